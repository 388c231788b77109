// `quantlab retention` and `quantlab sweep` through the real binary, on the bundled tool-calling models:
// the reports they write, resuming an interrupted sweep, and bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>

#include "cli_support.h"

namespace quantlab::testing {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::json;
using namespace tool_calling;

TEST(RetentionCli, WeightsOnlyFromAnAdapter) {
  TempDir tmp;
  const auto r = run_quantlab("retention --base " + shell_quote(kBase) + " --adapter " + shell_quote(kAdapter) +
                              " --bits 8,4,2 --out " + shell_quote(tmp / "out") + " --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("lost first"), std::string::npos) << r.out;
  const ojson j = ojson::parse(slurp(tmp / "out/retention.json"));
  EXPECT_EQ(j["weights"]["source"], "adapter");
  ASSERT_EQ(j["weights"]["overall"].size(), 3u);
  EXPECT_GT(j["weights"]["overall"][0]["cosine"].get<double>(), j["weights"]["overall"][2]["cosine"].get<double>());
  EXPECT_FALSE(j.contains("outputs"));
  EXPECT_NE(slurp(tmp / "out/retention.md").find("## Where the fine-tune is lost first"), std::string::npos);
}

TEST(RetentionCli, FromTheOutputsWithAnAdapterFusesInTheWorkArea) {
  TempDir tmp;
  const auto r = run_quantlab("retention --base " + shell_quote(kBase) + " --adapter " + shell_quote(kAdapter) +
                              " --bits 8,3 --suite " + shell_quote(kSeed5) + " --tools " + shell_quote(kTools) +
                              " --max-tokens 6 --json --out " + shell_quote(tmp / "out"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const ojson j = ojson::parse(r.out);
  ASSERT_EQ(j["outputs"]["quantized"].size(), 2u);
  EXPECT_EQ(j["outputs"]["queries"], 5);
  EXPECT_LT(j["outputs"]["quantized"][0]["kl_reply"].get<double>(), j["outputs"]["quantized"][1]["kl_reply"].get<double>());
  EXPECT_TRUE(j.contains("agreement_spearman"));
  // The fused model and the quantized ones lived in the work area only.
  EXPECT_FALSE(fs::exists(tmp / "out/fused"));
  EXPECT_FALSE(fs::exists(tmp / "out/models"));
  EXPECT_TRUE(fs::exists(tmp / "out/retention.json"));
}

// Issue 21: each rounding method at each width, side by side with round-to-nearest, from the stored
// weights and from the outputs. GPTQ keeps the 3-bit model an order of magnitude closer to the fine-tune
// on the suite (docs/rounding.md: KL 0.0009 vs 0.0088 over the reply).
TEST(RetentionCli, RoundingMethodsSideBySide) {
  TempDir tmp;
  // Calibrated on the first half of dev40, scored on the second (queries the calibration never saw).
  std::istringstream dev40(slurp(kDev40));
  std::string line, first_half, second_half;
  for (int i = 0; std::getline(dev40, line); ++i) (i < 20 ? first_half : second_half) += line + "\n";
  std::ofstream(tmp / "calibration.jsonl") << first_half;
  std::ofstream(tmp / "held-out.jsonl") << second_half;
  const auto r = run_quantlab("retention --base " + shell_quote(kBase) + " --fused " + shell_quote(kFused) +
                              " --bits 3 --suite " + shell_quote(tmp / "held-out.jsonl") + " --tools " +
                              shell_quote(kTools) + " --max-tokens 16 --method gptq --calibration " +
                              shell_quote(tmp / "calibration.jsonl") + " --calibration-tokens 32 --json --out " +
                              shell_quote(tmp / "out"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const ojson j = ojson::parse(r.out);
  ASSERT_EQ(j["methods"].size(), 2u) << r.out;
  const ojson& rtn = j["methods"][0];
  const ojson& gptq = j["methods"][1];
  EXPECT_EQ(rtn["method"], "rtn");
  EXPECT_EQ(gptq["method"], "gptq");
  EXPECT_EQ(gptq["bits"], 3);
  // rtn's row is the main analysis's own numbers.
  EXPECT_EQ(rtn["cosine"], j["weights"]["overall"][0]["cosine"]);
  EXPECT_EQ(rtn["kl_reply"], j["outputs"]["quantized"][0]["kl_reply"]);
  EXPECT_LT(gptq["kl_reply"].get<double>(), rtn["kl_reply"].get<double>());
  EXPECT_GT(gptq["retention_reply"].get<double>(), rtn["retention_reply"].get<double>());
  EXPECT_GT(gptq["kept"].get<double>(), 0.9);
  EXPECT_NE(slurp(tmp / "out/retention.md").find("## By rounding method"), std::string::npos);
  EXPECT_FALSE(fs::exists(tmp / "out/models"));
}

// With --sequential each width is rounded on statistics recorded for it, the model `quantize --sequential`
// writes from the same calibration, byte for byte, and reported under its own name.
TEST(RetentionCli, SequentialStatisticsRoundAsQuantizeDoes) {
  TempDir tmp;
  std::istringstream dev40(slurp(kDev40));
  std::string line, first_half;
  for (int i = 0; i < 10 && std::getline(dev40, line); ++i) first_half += line + "\n";
  std::ofstream(tmp / "calibration.jsonl") << first_half;
  const std::string calibration = " --calibration " + shell_quote(tmp / "calibration.jsonl") + " --tools " +
                                  shell_quote(kTools) + " --calibration-tokens 8";
  const auto r = run_quantlab("retention --base " + shell_quote(kBase) + " --fused " + shell_quote(kFused) +
                              " --bits 3 --method gptq --sequential --keep-models --json --out " +
                              shell_quote(tmp / "out") + calibration);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const ojson j = ojson::parse(r.out);
  ASSERT_EQ(j["methods"].size(), 2u) << r.out;
  EXPECT_EQ(j["methods"][1]["method"], "gptq+seq");
  const auto q = run_quantlab("quantize " + shell_quote(kFused) + " " + shell_quote(tmp / "q") +
                              " --bits 3 --method gptq --sequential --quiet" + calibration);
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_EQ(slurp(tmp / "out/models/q3-g64-gptq/model.safetensors"), slurp(tmp / "q/model.safetensors"));
}

TEST(RetentionCli, BadInputWritesNothing) {
  TempDir tmp;
  auto r = run_quantlab("retention --base " + shell_quote(kBase) + " --bits 8,4 --out " + shell_quote(tmp / "out"));
  EXPECT_EQ(r.exit_code, kUsage) << r.err;  // neither --adapter nor --fused
  r = run_quantlab("retention --base " + shell_quote(kBase) + " --fused " + shell_quote(kFused) + " --bits 8,9 --out " +
                   shell_quote(tmp / "out"));
  EXPECT_EQ(r.exit_code, kUsage);
  EXPECT_NE(r.err.find("'9' is not a bit width"), std::string::npos) << r.err;
  r = run_quantlab("retention --base " + shell_quote(kBase) + " --fused " + shell_quote(kFused) +
                   " --method gptq --out " + shell_quote(tmp / "out"));
  EXPECT_EQ(r.exit_code, kUsage);  // nothing to calibrate on
  EXPECT_NE(r.err.find("--calibration"), std::string::npos) << r.err;
  r = run_quantlab("retention --base " + shell_quote(kBase) + " --fused " + shell_quote(kFused) +
                   " --method fancy --suite " + shell_quote(kSeed5) + " --out " + shell_quote(tmp / "out"));
  EXPECT_EQ(r.exit_code, kUsage);
  EXPECT_NE(r.err.find("expected rtn, gptq or delta"), std::string::npos) << r.err;
  r = run_quantlab("retention --base " + shell_quote(kBase) + " --fused " + shell_quote(kFused) + " --sequential --out " +
                   shell_quote(tmp / "out"));
  EXPECT_EQ(r.exit_code, kUsage);
  EXPECT_NE(r.err.find("--sequential goes with --method"), std::string::npos) << r.err;
  r = run_quantlab("retention --base " + shell_quote(data_path("tool-calling/moe-base-f16")) + " --adapter " +
                   shell_quote(kAdapter) + " --out " + shell_quote(tmp / "out"));
  EXPECT_EQ(r.exit_code, kInvalid);
  EXPECT_NE(r.err.find("adapter module 'model.layers."), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "out"));
}

// The sweep end to end: two widths besides the 8-bit baseline, a short suite, real bench workers.
TEST(SweepCli, EndToEndThenResumes) {
  TempDir tmp;
  const std::string args = "sweep " + shell_quote(kFused) + " --bits 6,4 --suite " + shell_quote(kSeed5) + " --tools " +
                           shell_quote(kTools) + " --base " + shell_quote(kBase) +
                           " --max-tokens 12 --no-cold --quiet --threads 2 --out " + shell_quote(tmp / "sweep");
  const auto first = run_quantlab(args);
  ASSERT_EQ(first.exit_code, 0) << first.err << first.out;
  EXPECT_NE(first.out.find("lowest minimum viable"), std::string::npos) << first.out;
  EXPECT_EQ(first.out.find("(reused)"), std::string::npos) << first.out;
  const ojson j = ojson::parse(slurp(tmp / "sweep/results.json"));
  EXPECT_EQ(j["schema"], "quantlab.sweep/1");
  ASSERT_EQ(j["widths"].size(), 3u);
  EXPECT_EQ(j["widths"][0]["bits"], 8);
  EXPECT_EQ(j["widths"][0]["verdict"], "baseline");
  const double bandwidth = j["bench"]["machine"]["bandwidth_gb_per_s"].get<double>();
  EXPECT_GT(bandwidth, 0);  // measured once for the sweep
  for (size_t i = 0; i < j["widths"].size(); ++i) {
    const ojson& w = j["widths"][i];
    EXPECT_TRUE(w["ok"].get<bool>()) << w.dump();
    EXPECT_GT(w["disk_bytes"].get<double>(), 0);
    EXPECT_TRUE(w.contains("retention"));
    // The plan next to the measurement: the predicted disk within the files' headers (a few kB) of the
    // measured one, and the decode bound at the sweep's bandwidth.
    ASSERT_TRUE(w["plan"].is_object()) << w.dump();
    const ojson& p = j["bench"]["models"][i]["plan"];
    EXPECT_EQ(p["bits"], w["bits"]);
    EXPECT_NEAR(w["plan"]["disk_bytes"].get<double>(), w["disk_bytes"].get<double>(), 8192);
    EXPECT_EQ(w["plan"]["disk_bytes"], p["disk_bytes"]);
    EXPECT_EQ(w["plan"]["bandwidth_gb_per_s"], bandwidth);
    EXPECT_DOUBLE_EQ(w["plan"]["decode_tps_bound"].get<double>(), bandwidth * 1e9 / p["bytes_per_token"].get<double>());
    EXPECT_DOUBLE_EQ(w["plan"]["decode_fraction_of_bound"].get<double>(),
                     w["decode_tps"].get<double>() / w["plan"]["decode_tps_bound"].get<double>());
  }
  EXPECT_NE(slurp(tmp / "sweep/report.md").find("## Plan vs measured"), std::string::npos);
  // The 8-bit model behaves like the fused float model on seed5: 4 tool-or-direct decisions right (see
  // output_retention_test), but its two tool calls name search_web where get_time and get_weather are
  // expected, so only the 2 direct queries are fully right.
  ASSERT_EQ(j["bench"]["models"].size(), 3u);
  EXPECT_EQ(j["bench"]["models"][0]["accuracy"]["decision"]["correct"], 4);
  EXPECT_DOUBLE_EQ(j["widths"][0]["accuracy_pct"].get<double>(), 40.0);
  EXPECT_EQ(j["bench"]["comparisons"].size(), 2u);
  const std::string svg = slurp(tmp / "sweep/chart.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("against disk size"), std::string::npos);
  EXPECT_NE(slurp(tmp / "sweep/report.md").find("Lowest width that is minimum viable"), std::string::npos);

  const auto again = run_quantlab(args);  // everything is done: nothing is measured again
  ASSERT_EQ(again.exit_code, 0) << again.err;
  size_t reused = 0;
  for (size_t at = again.out.find("(reused)"); at != std::string::npos; at = again.out.find("(reused)", at + 1)) ++reused;
  EXPECT_EQ(reused, 3u) << again.out;
  const ojson k = ojson::parse(slurp(tmp / "sweep/results.json"));
  ASSERT_EQ(k["widths"].size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(k["widths"][i]["accuracy_pct"], j["widths"][i]["accuracy_pct"]);
    EXPECT_TRUE(k["widths"][i]["reused"].get<bool>());
  }
}

TEST(SweepCli, RejectsABadSuiteBeforeQuantizing) {
  TempDir tmp;
  std::ofstream(tmp / "bad.jsonl") << "{\"id\": \"x\"}\n";
  const auto r = run_quantlab("sweep " + shell_quote(kFused) + " --bits 4 --suite " + shell_quote(tmp / "bad.jsonl") +
                              " --tools " + shell_quote(kTools) + " --out " + shell_quote(tmp / "sweep"));
  EXPECT_EQ(r.exit_code, kInvalid) << r.err;
  EXPECT_NE(r.err.find("bad.jsonl"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "sweep/models"));
}

TEST(SweepCli, RejectsAnUnknownRecipeOrBudgetBeforeQuantizing) {
  TempDir tmp;
  const std::string common = "sweep " + shell_quote(kFused) + " --bits 4 --suite " + shell_quote(kSeed5) + " --tools " +
                             shell_quote(kTools) + " --out " + shell_quote(tmp / "sweep");
  auto r = run_quantlab(common + " --recipe mixed_9_9");
  EXPECT_EQ(r.exit_code, kUsage) << r.err;
  EXPECT_NE(r.err.find("quantlab: error:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("mixed_9_9"), std::string::npos) << r.err;
  r = run_quantlab(common + " --target-bpw 3,-1");
  EXPECT_EQ(r.exit_code, kUsage) << r.err;
  EXPECT_NE(r.err.find("--target-bpw -1"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "sweep"));
}

}  // namespace
}  // namespace quantlab::testing
