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

// The step-by-step pipeline and the one-command form through the binary, and their usage errors.
TEST_F(MixedCli, CalibrateSensitivityAllocateQuantizeDivergence) {
  const std::string stats = tmp_ / "stats.safetensors", sens = tmp_ / "sens.json", plan = tmp_ / "plan.json";
  const std::string suite = shell_quote(tool_calling::kSeed5), tools = shell_quote(tool_calling::kTools);
  RunResult r = run_quantlab("calibrate " + shell_quote(kFused) + " --suite " + suite + " --tools " + tools +
                             " --max-tokens 8 --out " + shell_quote(stats));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_quantlab("sensitivity " + shell_quote(kFused) + " --base " + shell_quote(tool_calling::kBase) +
                   " --stats " + shell_quote(stats) + " --out " + shell_quote(sens));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_quantlab("allocate " + shell_quote(sens) + " --smaller-than 4:64 --by 15 --objective output --out " +
                   shell_quote(plan));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json p = json::parse(slurp(plan));
  EXPECT_EQ(p["predicted"]["objective"], "output");
  const std::string q = quantize("allocated", "--plan " + shell_quote(plan));
  r = run_quantlab("divergence " + shell_quote(kFused) + " --base " + shell_quote(tool_calling::kBase) + " --suite " +
                   suite + " --tools " + tools + " --max-tokens 4 --json --model alloc=" + shell_quote(q));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json d = json::parse(r.out);
  EXPECT_EQ(d["models"][0]["name"], "alloc");
  EXPECT_LT(d["models"][0]["kl_reply"].get<double>(), d["base"]["kl_reply"].get<double>());

  const std::string one = tmp_ / "one";
  r = run_quantlab("quantize " + shell_quote(kFused) + " " + shell_quote(one) + " --quiet --target-bpw 3.6 --calibration " +
                   suite + " --tools " + tools);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_LE(json::parse(slurp(one + "/quantlab_plan.json"))["bits_per_weight"].get<double>(), 3.6);

  struct Bad {
    std::string args;
    int exit_code;
    std::string names;
  };
  const Bad bad[] = {
      {"allocate " + shell_quote(sens) + " --target-bpw 3 --max-bytes 9 --out " + shell_quote(tmp_ / "x.json"), kUsage,
       "exactly one budget"},
      {"allocate " + shell_quote(sens) + " --target-bpw 0.5 --out " + shell_quote(tmp_ / "x.json"), kUsage,
       "smallest this model can be stored in"},
      {"calibrate " + shell_quote(kFused) + " --out " + shell_quote(tmp_ / "s.safetensors"), kUsage, "--suite or --text"},
      {"sensitivity " + shell_quote(kFused) + " --stats " + shell_quote(q + "/model.safetensors") + " --out " +
           shell_quote(tmp_ / "x.json"), kInvalid, "not a quantlab statistics file"},
      {"allocate " + shell_quote(stats) + " --target-bpw 3 --out " + shell_quote(tmp_ / "x.json"), kInvalid,
       "not valid JSON"},
  };
  for (const Bad& b : bad) {
    const RunResult e = run_quantlab(b.args);
    EXPECT_EQ(e.exit_code, b.exit_code) << b.args << "\n" << e.err;
    EXPECT_NE(e.err.find(b.names), std::string::npos) << e.err;
    EXPECT_FALSE(fs::exists(tmp_ / "x.json"));
  }
}

}  // namespace
}  // namespace quantlab::testing
