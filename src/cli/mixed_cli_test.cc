// Mixed precision through the real binary: `quantize --recipe` writes mlx-lm's per-module entries and
// the plan it followed (OUT/quantlab_plan.json); `quantize --plan` of that file reproduces the same
// tensors; `inspect` reports the plan's bits per weight; bad plans and overrides are refused with the
// file, module or rule named and no output left behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_support.h"

namespace quantlab::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using tool_calling::kFused;

class MixedCli : public ::testing::Test {
 protected:
  TempDir tmp_;
  std::string quantize(const std::string& name, const std::string& flags) {
    const std::string out = tmp_ / name;
    const RunResult r = run_quantlab("quantize " + shell_quote(kFused) + " " + shell_quote(out) + " --quiet " + flags);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return out;
  }
};

TEST_F(MixedCli, RecipeWritesEveryModulesEntryAndThePlanReproducesTheFiles) {
  const std::string recipe = quantize("recipe", "--recipe mixed_3_6");
  const json config = json::parse(slurp(recipe + "/config.json"));
  const json plan = json::parse(slurp(recipe + "/quantlab_plan.json"));
  EXPECT_EQ(plan["format"], "quantlab.plan/1");
  size_t entries = 0;
  for (auto it = config["quantization"].begin(); it != config["quantization"].end(); ++it)
    entries += it->is_object();
  EXPECT_EQ(entries, plan["quantized_modules"].get<size_t>());
  // The fixture has L = 4 layers: L//8 = 0 and 7L//8 = 3, so layers 3 (i >= 3) and 2 ((2 - 0) % 3 == 2)
  // give v_proj and down_proj the high width.
  EXPECT_EQ(config["quantization"]["model.layers.3.self_attn.v_proj"]["bits"], 6);
  EXPECT_EQ(config["quantization"]["model.layers.2.mlp.down_proj"]["bits"], 6);
  EXPECT_EQ(config["quantization"]["model.layers.1.mlp.down_proj"]["bits"], 3);
  EXPECT_EQ(config["quantization"]["model.layers.0.self_attn.q_proj"]["bits"], 3);

  const std::string replay = quantize("replay", "--plan " + shell_quote(recipe + "/quantlab_plan.json"));
  EXPECT_EQ(slurp(replay + "/model.safetensors"), slurp(recipe + "/model.safetensors"));

  const RunResult inspect = run_quantlab("inspect " + shell_quote(recipe) + " --json");
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_DOUBLE_EQ(json::parse(inspect.out)["bits_per_weight"].get<double>(), plan["bits_per_weight"].get<double>());
}

TEST_F(MixedCli, PlanNamingAModuleTheModelLacksIsRefused) {
  const std::string plan = tmp_ / "plan.json";
  std::ofstream(plan) << R"({"format": "quantlab.plan/1", "bits": 4, "group_size": 64,
    "modules": {"model.layers.9.self_attn.q_proj": {"bits": 8, "group_size": 64}}})";
  const RunResult r = run_quantlab("quantize " + shell_quote(kFused) + " " + shell_quote(tmp_ / "out") +
                                   " --quiet --plan " + shell_quote(plan));
  EXPECT_EQ(r.exit_code, kInvalid) << r.err;
  EXPECT_NE(r.err.find("quantlab: error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("plan.json: modules['model.layers.9.self_attn.q_proj']"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp_ / "out"));
}

TEST_F(MixedCli, BadPlansAndRulesAreRefused) {
  struct Case {
    std::string plan_text, flags;
    int exit_code;
    std::string names;
  };
  const std::string plan = tmp_ / "plan.json";
  const Case cases[] = {
      {"{\"format\": \"quantlab.plan/1\", \"bits\": 4,", "", kInvalid, "plan.json: not valid JSON"},
      {R"({"format": "other", "bits": 4, "group_size": 64, "modules": {}})", "", kInvalid, "'format'"},
      {R"({"format": "quantlab.plan/1", "bits": 9, "group_size": 64, "modules": {}})", "", kInvalid, "bits 9"},
      {R"({"format": "quantlab.plan/1", "bits": 4, "group_size": 64,
          "modules": {"lm_head": {"bits": "8"}}})", "", kInvalid, "modules['lm_head']: 'bits'"},
      {R"({"format": "quantlab.plan/1", "bits": 4, "group_size": 64, "modules": {}})", "--bits 8", kUsage,
       "--bits"},
  };
  for (const Case& c : cases) {
    std::ofstream(plan) << c.plan_text;
    const RunResult r = run_quantlab("quantize " + shell_quote(kFused) + " " + shell_quote(tmp_ / "out") +
                                     " --quiet --plan " + shell_quote(plan) + " " + c.flags);
    EXPECT_EQ(r.exit_code, c.exit_code) << c.plan_text << "\n" << r.err;
    EXPECT_NE(r.err.find(c.names), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(tmp_ / "out"));
  }
  for (const std::string rule : {"'nothing_matches=4'", "'mlp=9'", "'mlp=4:48'", "'(=4'"}) {
    const RunResult r = run_quantlab("quantize " + shell_quote(kFused) + " " + shell_quote(tmp_ / "out") +
                                     " --quiet --override " + rule);
    EXPECT_EQ(r.exit_code, kUsage) << rule << "\n" << r.err;
    EXPECT_NE(r.err.find("override"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(tmp_ / "out"));
  }
  const RunResult unknown = run_quantlab("quantize " + shell_quote(kFused) + " " + shell_quote(tmp_ / "out") +
                                         " --recipe mixed_9_9");
  EXPECT_EQ(unknown.exit_code, kUsage) << unknown.err;
  EXPECT_NE(unknown.err.find("mixed_9_9"), std::string::npos) << unknown.err;
}

}  // namespace
}  // namespace quantlab::testing
