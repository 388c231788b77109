// `quantlab plan` and `quantlab synth` through the real binary: the issue-7 table, criteria files,
// synth -> quantize -> plan round trip, and usage errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_support.h"

namespace quantlab::testing {
namespace {

namespace fs = std::filesystem;

const std::string kQwen30B = shell_quote(data_path("configs/qwen3-30b-a3b"));

nlohmann::json plan_json(const std::string& args) {
  const auto r = run_quantlab("plan " + args + " --json --bandwidth 100");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return nlohmann::json::parse(r.out);
}

const nlohmann::json& row(const nlohmann::json& plan, int bits, int group) {
  for (const auto& r : plan["rows"])
    if (r["bits"] == bits && r["group_size"] == group) return r;
  throw std::runtime_error("row not found");
}

TEST(PlanCli, Qwen3_30B_A3B_SizeRulesFromConfigAlone) {
  const auto p = plan_json(kQwen30B + " --bits 5,6,8 --group-size 64,128");
  EXPECT_EQ(p["rows"].size(), 6u);
  EXPECT_NEAR(row(p, 8, 64)["disk_bytes"].get<double>() / 1e9, 32.4, 0.1);
  EXPECT_NEAR(row(p, 6, 64)["disk_smaller_pct"].get<double>(), 23.5, 0.2);
  EXPECT_EQ(row(p, 6, 64)["verdict"], "cannot pass");
  EXPECT_EQ(row(p, 6, 128)["verdict"], "viable candidate");
  EXPECT_EQ(row(p, 5, 64)["verdict"], "optimal candidate");
  const auto& r = row(p, 6, 128);
  EXPECT_NEAR(r["tokens_per_s_bound"].get<double>(), 100e9 / r["bytes_per_token"].get<double>(), 1e-6);
  EXPECT_EQ(p["bandwidth_source"], "given");
}

// The rounding method changes codes, not sizes (issue 21): the rows are the same with --method, and
// the report says so and what each method needs.
TEST(PlanCli, RoundingMethodsLeaveEveryRowUnchanged) {
  const auto plain = plan_json(kQwen30B + " --bits 3,4,6 --group-size 64");
  const auto with = plan_json(kQwen30B + " --bits 3,4,6 --group-size 64 --method rtn,gptq,delta");
  EXPECT_EQ(with["rows"], plain["rows"]);
  ASSERT_EQ(with["rounding_methods"].size(), 3u);
  EXPECT_EQ(with["rounding_methods"][1]["method"], "gptq");
  EXPECT_EQ(with["rounding_methods"][2]["needs"], "calibration, and the base model or the adapter");
  EXPECT_FALSE(plain.contains("rounding_methods"));
  const auto text = run_quantlab("plan " + kQwen30B + " --bits 4 --group-size 64 --bandwidth 50 --method gptq");
  EXPECT_NE(text.out.find("rounding   gptq: size, memory and speed as rtn in every row"), std::string::npos) << text.out;
  const auto bad = run_quantlab("plan " + kQwen30B + " --method nearest");
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("'nearest' is not a rounding method"), std::string::npos) << bad.err;
}

TEST(PlanCli, MarkdownTableMarksTheRows) {
  const auto r = run_quantlab("plan " + kQwen30B + " --bits 6 --group-size 64,128 --bandwidth 50");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| 6 | 64 | 24.8"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cannot pass"), std::string::npos);
  EXPECT_NE(r.out.find("| 6 | 128 | 23.8"), std::string::npos) << r.out;  // 23.86 GB tensors + headers
}

TEST(PlanCli, CriteriaFileChangesVerdictsAndBadFilesNameTheLine) {
  TempDir tmp;
  std::ofstream(tmp / "strict.toml") << "[optimal]\ndisk_smaller_pct = 50\n[minimum_viable]\ndisk_smaller_pct = 40\n";
  const auto p = plan_json(kQwen30B + " --bits 5 --group-size 64 --criteria " + shell_quote(tmp / "strict.toml"));
  EXPECT_EQ(row(p, 5, 64)["verdict"], "cannot pass");  // 35 % < 40 %
  std::ofstream(tmp / "bad.toml") << "[optimal]\ndisk_smallest_pct = 50\n";
  const auto r = run_quantlab("plan " + kQwen30B + " --bandwidth 1 --criteria " + shell_quote(tmp / "bad.toml"));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("bad.toml:2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("disk_smallest_pct"), std::string::npos) << r.err;
}

TEST(PlanCli, SynthQuantizePlanRoundTrip) {
  TempDir tmp;
  const std::string cfg = shell_quote(data_path("reference-models/qwen3moe-tiny/config.json"));
  auto r = run_quantlab("synth " + shell_quote(tmp / "f") + " --config " + cfg + " --layers 2 --seed 3 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto before = plan_json(shell_quote(tmp / "f") + " --bits 3 --group-size 32");
  r = run_quantlab("quantize " + shell_quote(tmp / "f") + " " + shell_quote(tmp / "q") + " --bits 3 --group-size 32 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto after = plan_json(shell_quote(tmp / "q") + " --bits 3 --group-size 32");
  EXPECT_EQ(after["stored"]["tensor_bytes"], row(before, 3, 32)["tensor_bytes"]);
  EXPECT_EQ(row(after, 3, 32)["tensor_bytes"], row(before, 3, 32)["tensor_bytes"]);
  EXPECT_EQ(row(after, 3, 32)["bytes_per_token"], row(before, 3, 32)["bytes_per_token"]);
  // The engine runs the quantized synth model.
  r = run_quantlab("logits " + shell_quote(tmp / "q") + " --ids 1,2,3 --out " + shell_quote(tmp / "logits.safetensors"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // synth --bits writes the same quantized files in one step.
  r = run_quantlab("synth " + shell_quote(tmp / "direct") + " --config " + cfg +
                   " --layers 2 --seed 3 --bits 3 --group-size 32 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(testing::slurp_file(tmp / "direct/model.safetensors"), testing::slurp_file(tmp / "q/model.safetensors"));
  EXPECT_EQ(testing::slurp_file(tmp / "direct/config.json"), testing::slurp_file(tmp / "q/config.json"));
}

// Issue 15: `plan` sizes per-module plans and recipes exactly as quantize writes them, and answers the
// seed's adapter-floor question from config.json plus an adapter config.
TEST(PlanCli, SizesPlanFilesRecipesAndAnAdapterFloor) {
  TempDir tmp;
  const std::string fused = shell_quote(data_path("tool-calling/dense-fused-strong-f16"));
  auto r = run_quantlab("quantize " + fused + " " + shell_quote(tmp / "r") + " --recipe mixed_3_6 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto written = nlohmann::json::parse(run_quantlab("inspect " + shell_quote(tmp / "r") + " --json").out);
  const auto p = plan_json(fused + " --bits 4 --group-size 64 --plan " + shell_quote(tmp / "r/quantlab_plan.json") +
                           " --recipe mixed_3_6 --adapter " + shell_quote(data_path("tool-calling/dense-lora-strong")));
  ASSERT_EQ(p["rows"].size(), 4u);
  EXPECT_EQ(p["rows"][1]["plan"], "quantlab_plan.json");
  EXPECT_EQ(p["rows"][2]["plan"], "mixed_3_6");
  EXPECT_EQ(p["rows"][1]["tensor_bytes"], written["tensor_bytes"]);
  EXPECT_EQ(p["rows"][2]["tensor_bytes"], written["tensor_bytes"]);
  // The adapter touches every projection of the 4 layers; only the tied embedding is left to shrink,
  // and at 4 bits it brings the model just past the 25 % disk rule.
  EXPECT_TRUE(p["adapter_floor"]["fits"].get<bool>());
  EXPECT_EQ(p["adapter_floor"]["rest_bits"], 4);
  EXPECT_EQ(p["adapter_floor"]["touched_modules"], 28);
  EXPECT_LE(p["adapter_floor"]["tensor_bytes"], p["adapter_floor"]["budget_tensor_bytes"]);

  fs::create_directories(tmp / "attn");
  std::ofstream(tmp / "attn/adapter_config.json") << R"({"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]})";
  r = run_quantlab("plan --like qwen3-30b-a3b --bits 8 --group-size 64 --bandwidth 10 --adapter " + shell_quote(tmp / "attn"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("adapter floor: the 192 modules"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("the rest at 5-bit"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("meets it"), std::string::npos) << r.out;

  // A plan naming a module the model lacks, and an unknown recipe, are refused by name.
  std::ofstream(tmp / "bad.json") << R"({"format": "quantlab.plan/1", "bits": 4, "group_size": 64, "modules": {"model.layers.9.mlp.up_proj": {"bits": 8, "group_size": 64}}})";
  r = run_quantlab("plan " + fused + " --bandwidth 10 --plan " + shell_quote(tmp / "bad.json"));
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("model.layers.9.mlp.up_proj"), std::string::npos) << r.err;
  r = run_quantlab("plan " + fused + " --bandwidth 10 --recipe mixed_9_9");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("mixed_9_9"), std::string::npos) << r.err;
}

TEST(SynthCli, UsageErrors) {
  TempDir tmp;
  EXPECT_EQ(run_quantlab("synth " + shell_quote(tmp / "a") + " --quiet").exit_code, 2);  // neither --like nor --config
  const auto r = run_quantlab("synth " + shell_quote(tmp / "a") + " --like qwen3-9b --quiet");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("qwen3-0.6b"), std::string::npos) << r.err;  // lists the known names
  fs::create_directories(tmp / "exists");
  const std::string cfg = shell_quote(data_path("reference-models/llama-tiny/config.json"));
  EXPECT_EQ(run_quantlab("synth " + shell_quote(tmp / "exists") + " --config " + cfg + " --quiet").exit_code, 2);
  EXPECT_EQ(run_quantlab("synth " + shell_quote(tmp / "exists") + " --config " + cfg + " --quiet --overwrite").exit_code, 0);
  // --group-size only with --bits; widths and group sizes MLX does not have are refused; no output.
  EXPECT_EQ(run_quantlab("synth " + shell_quote(tmp / "b") + " --config " + cfg + " --group-size 32 --quiet").exit_code, 2);
  EXPECT_EQ(run_quantlab("synth " + shell_quote(tmp / "b") + " --config " + cfg + " --bits 9 --quiet").exit_code, 2);
  EXPECT_EQ(run_quantlab("synth " + shell_quote(tmp / "b") + " --config " + cfg + " --bits 4 --group-size 48 --quiet").exit_code, 2);
  EXPECT_FALSE(fs::exists(tmp / "b"));
}

// `quantlab suite-size` (issue 22): the number the library computes, in words and as JSON, and the
// documented exit code for impossible requests.
TEST(SuiteSizeCli, PrintsTheQueriesAndRefusesImpossibleRequests) {
  auto r = run_quantlab("suite-size --baseline-acc 80 --drop 10 --discordance 20 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["queries"].get<int>(), j["normal_approximation"].get<int>());  // the exact test is conservative
  EXPECT_GE(j["power"].get<double>(), 0.8);
  EXPECT_EQ(j["lost_pct"], 15.0);
  EXPECT_EQ(j["gained_pct"], 5.0);
  r = run_quantlab("suite-size --baseline-acc 40 --drop 20");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("39 queries detect a drop of 20 points from 40 %"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("every flip a loss"), std::string::npos) << r.out;
  for (const auto& [args, needle] : std::vector<std::pair<std::string, std::string>>{
           {"--baseline-acc 80", "--drop is required"},
           {"--baseline-acc 80 --drop 0", "--drop must be in (0, 100]"},
           {"--baseline-acc 80 --drop 20 --discordance 10", "--discordance 10 % is below --drop 20 %"},
           {"--baseline-acc 80 --drop 10 --power 1", "--power must be in (0, 1)"},
           {"--baseline-acc 80 --drop 10 --bogus", "bogus"}}) {
    r = run_quantlab("suite-size " + args);
    EXPECT_EQ(r.exit_code, kUsage) << args;
    EXPECT_EQ(r.err.rfind("quantlab: error:", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "") << args;
  }
}

// Issue 20: a smaller base beside the fine-tune's, from published configs alone.
TEST(PlanCli, SmallerBaseSideBySide) {
  const auto r = run_quantlab("plan --like qwen3-30b-a3b --like qwen2.5-3b --bits 4,8 --group-size 64 --bandwidth 100");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("## Side by side"), std::string::npos);
  EXPECT_NE(r.out.find("different Qwen generations"), std::string::npos);
  EXPECT_NE(r.out.find("| like:qwen2.5-3b (qwen2) | 3.086 | 8 | 64 |"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(
      run_quantlab("plan --like qwen3-30b-a3b --like qwen2.5-3b --bits 8 --group-size 64 --bandwidth 100 --json").out);
  ASSERT_EQ(j["models"].size(), 2u);
  EXPECT_EQ(j["models"][1]["model_type"], "qwen2");
  EXPECT_EQ(j["models"][1]["parameters"], 3085938688ull);
  // The same plan as for a directory holding the published config.
  const auto bad = run_quantlab("plan --like qwen2.5-4b");
  EXPECT_EQ(bad.exit_code, kUsage);
  EXPECT_NE(bad.err.find("quantlab: error: --like qwen2.5-4b: unknown model"), std::string::npos) << bad.err;
  EXPECT_EQ(run_quantlab("plan").exit_code, kUsage);
}

// Issue 20: synth a Qwen2.5 model, quantize it, and see its q/k/v biases stay float in inspect; the
// quantized model runs.
TEST(SynthCli, Qwen25QuantizesWithFloatBiasesAndRuns) {
  TempDir tmp;
  auto r = run_quantlab("synth " + shell_quote(tmp / "m") + " --like qwen2.5-0.5b --layers 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_quantlab("quantize " + shell_quote(tmp / "m") + " " + shell_quote(tmp / "q") + " --bits 4 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_quantlab("inspect " + shell_quote(tmp / "q") + " --json --tensors");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["architecture"], "qwen2");
  size_t biases = 0;
  for (const auto& t : j["tensors"]) {
    const std::string name = t["name"];
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0) {
      ++biases;
      EXPECT_EQ(t["bits"], 0) << name;
      EXPECT_EQ(t["storage"], "BF16") << name;
    }
    if (name.find("q_proj.weight") != std::string::npos) {
      EXPECT_EQ(t["bits"], 4);
    }
  }
  EXPECT_EQ(biases, 3u);  // q, k, v of the one layer
  r = run_quantlab("generate " + shell_quote(tmp / "q") + " --ids 1,2,3 --max-tokens 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

}  // namespace
}  // namespace quantlab::testing
