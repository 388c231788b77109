// `quantlab experts` and `quantlab prune` through the binary (issue 16): the outputs, the pruned
// model's config, and bad input refused with the documented exit code and no output.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_support.h"

namespace quantlab::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kMoe = data_path("tool-calling/moe-fused-strong-f16");

TEST(ExpertsCli, ProfileThenPruneTheUnusedExperts) {
  TempDir tmp;
  std::ofstream(tmp / "t.txt") << "The weather today";
  auto r = run_quantlab("experts " + shell_quote(kMoe) + " --text " + shell_quote(tmp / "t.txt") + " --out " +
                        shell_quote(tmp / "prof"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* f : {"experts.json", "report.md", "heatmap.svg"}) EXPECT_TRUE(fs::exists(tmp / ("prof/" + std::string(f)))) << f;
  const json profile = json::parse(slurp_file(tmp / "prof/experts.json"));
  EXPECT_EQ(profile["format"], "quantlab.experts/1");
  EXPECT_EQ(profile["layers"].size(), 4u);
  EXPECT_EQ(profile["layers"][0]["experts"][0].count("saliency"), 1u);
  r = run_quantlab("prune " + shell_quote(kMoe) + " " + shell_quote(tmp / "pruned") + " --profile " +
                   shell_quote(tmp / "prof/experts.json") + " --drop-unused --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json summary = json::parse(r.out);
  EXPECT_LT(summary["experts_after"].get<int>(), 8);
  const json config = json::parse(slurp_file(tmp / "pruned/config.json"));
  EXPECT_EQ(config["num_local_experts"], summary["experts_after"]);
  EXPECT_TRUE(fs::exists(tmp / "pruned/tokenizer.json"));
  // The pruned model runs.
  r = run_quantlab("generate " + shell_quote(tmp / "pruned") + " --ids 550,446,554 --max-tokens 2 --json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(ExpertsCli, BadInputIsRefusedWithoutOutput) {
  TempDir tmp;
  std::ofstream(tmp / "t.txt") << "Hello";
  ASSERT_EQ(run_quantlab("experts " + shell_quote(kMoe) + " --text " + shell_quote(tmp / "t.txt") + " --out " +
                         shell_quote(tmp / "prof")).exit_code, 0);
  const std::string prof = shell_quote(tmp / "prof/experts.json");
  const std::string out = shell_quote(tmp / "out");
  struct Case {
    std::string args;
    int code;
    std::string needle;
  };
  json other = json::parse(slurp_file(tmp / "prof/experts.json"));
  other["layers"].erase(other["layers"].begin());
  std::ofstream(tmp / "other.json") << other.dump();
  std::ofstream(tmp / "broken.json") << "{\"format\": \"quantlab.experts/1\", \"layers\": [";
  const std::vector<Case> cases = {
      {"experts " + shell_quote(tool_calling::kFused) + " --suite " + shell_quote(tool_calling::kSeed5) + " --out " + out,
       kUsage, "not a mixture-of-experts model"},
      {"experts " + shell_quote(kMoe) + " --out " + out, kUsage, "needs --suite or --text"},
      {"prune " + shell_quote(kMoe) + " " + out + " --profile " + prof + " --keep 0", kUsage, "--keep 0"},
      {"prune " + shell_quote(kMoe) + " " + out + " --profile " + prof + " --keep 9", kUsage, "--keep 9"},
      {"prune " + shell_quote(kMoe) + " " + out + " --profile " + prof, kUsage, "exactly one of"},
      {"prune " + shell_quote(kMoe) + " " + out + " --profile " + prof + " --keep 4 --drop-unused", kUsage, "exactly one of"},
      {"prune " + shell_quote(kMoe) + " " + out + " --profile " + prof + " --keep-ratio 1.5", kUsage, "--keep-ratio"},
      {"prune " + shell_quote(kMoe) + " " + out + " --profile " + shell_quote(tmp / "other.json") + " --keep 4", kInvalid,
       "recorded on a model with 8 experts in 3 MoE layers"},
      {"prune " + shell_quote(kMoe) + " " + out + " --profile " + shell_quote(tmp / "broken.json") + " --keep 4", kInvalid,
       "broken.json: not valid JSON"},
      {"prune " + shell_quote(tool_calling::kFused) + " " + out + " --profile " + prof + " --keep 4", kUsage,
       "not a mixture-of-experts model"},
      {"plan " + shell_quote(kMoe) + " --keep-experts 9", kUsage, "--keep-experts 9"},
      {"plan " + shell_quote(tool_calling::kFused) + " --keep-experts 4", kUsage, "not a mixture-of-experts model"},
  };
  for (const Case& c : cases) {
    const auto r = run_quantlab(c.args);
    EXPECT_EQ(r.exit_code, c.code) << c.args << "\n" << r.err;
    EXPECT_EQ(r.err.rfind("quantlab: error:", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_FALSE(fs::exists(tmp / "out")) << c.args;
  }
}

TEST(PlanCli, KeepExpertsShrinksOnlyTheExperts) {
  const auto full = json::parse(run_quantlab("plan " + shell_quote(kMoe) + " --bits 8 --group-size 64 --bandwidth 10 --json").out);
  const auto half = json::parse(
      run_quantlab("plan " + shell_quote(kMoe) + " --keep-experts 0.5 --bits 8 --group-size 64 --bandwidth 10 --json").out);
  // 4 layers x 4 experts x 3 x 128 x 256 weights and 4 x 4 router rows of 256 fewer.
  EXPECT_EQ(full["parameters"].get<uint64_t>() - half["parameters"].get<uint64_t>(), 4ull * 4 * 3 * 128 * 256 + 4ull * 4 * 256);
}

}  // namespace
}  // namespace quantlab::testing
