// `--compute int8|bf16` measured the way docs/compute-paths.md does it: `divergence` with a quantized
// model as its own reference, the same files compared under three names, two run on the rounded paths.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "cli_support.h"

namespace quantlab::testing {
namespace {

using nlohmann::json;

TEST(ComputeCli, DivergenceOfTheRoundedPathsFromTheExactOneOnTheSameFiles) {
  TempDir tmp;
  const std::string q = shell_quote(tmp / "q4");
  ASSERT_EQ(run_quantlab("quantize " + shell_quote(tool_calling::kFused) + " " + q + " --bits 4 --quiet").exit_code, 0);
  const std::string common = "divergence " + q + " --base " + shell_quote(tool_calling::kBase) + " --suite " +
                             shell_quote(tool_calling::kSeed5) + " --tools " + shell_quote(tool_calling::kTools) +
                             " --max-tokens 16 --model exact=" + q + " --model int8=" + q + " --model bf16=" + q;
  const RunResult r = run_quantlab(common + " --model-compute int8=int8 --model-compute bf16=bf16 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json models = json::parse(r.out)["models"];
  ASSERT_EQ(models.size(), 3u);
  // The reference's own path: the same logits, so nothing diverges.
  EXPECT_EQ(models[0]["kl_reply"].get<double>(), 0.0);
  EXPECT_EQ(models[0]["top1_agreement"].get<double>(), 1.0);
  EXPECT_EQ(models[0]["flipped"], 0);
  // The int8 path: a small, nonzero divergence and no decision that flips (measured: KL ~2e-4, 99 %).
  EXPECT_GT(models[1]["kl_reply"].get<double>(), 0.0);
  EXPECT_LT(models[1]["kl_reply"].get<double>(), 0.01);
  EXPECT_GE(models[1]["top1_agreement"].get<double>(), 0.95);
  EXPECT_EQ(models[1]["flipped"], 0);
  // The bf16 path: activations keep 8 significant bits against int8's ~7, so it diverges less.
  EXPECT_GT(models[2]["kl_reply"].get<double>(), 0.0);
  EXPECT_LT(models[2]["kl_reply"].get<double>(), models[1]["kl_reply"].get<double>());
  EXPECT_GE(models[2]["top1_agreement"].get<double>(), 0.95);
  EXPECT_EQ(models[2]["flipped"], 0);

  const RunResult unknown = run_quantlab(common + " --model-compute other=int8");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("quantlab: error: --model-compute other=int8"), std::string::npos) << unknown.err;
  EXPECT_TRUE(unknown.out.empty()) << unknown.out;
}

// The flag is the same on every command that runs a model (issue 18's interface): listed in --help, and
// an unknown path is a usage error (exit 2) before anything loads or listens.
TEST(ComputeCli, EveryCommandThatRunsAModelTakesComputeAndRefusesUnknownPaths) {
  const std::string model = shell_quote(tool_calling::kFused);
  const std::string suite = shell_quote(tool_calling::kSeed5);
  const std::vector<std::string> commands = {"generate " + model + " --ids 1,2", "logits " + model + " --ids 1 --out x",
                                             "serve " + model + " --port 0", "bench --model a=" + model + " --suite " + suite};
  for (const std::string& command : commands) {
    SCOPED_TRACE(command);
    const std::string name = command.substr(0, command.find(' '));
    const RunResult help = run_quantlab(name + " --help");
    EXPECT_EQ(help.exit_code, 0);
    EXPECT_NE(help.out.find("--compute"), std::string::npos) << help.out;
    const RunResult bad = run_quantlab(command + " --compute fp8");
    EXPECT_EQ(bad.exit_code, 2) << bad.err;
    EXPECT_NE(bad.err.find("quantlab: error:"), std::string::npos) << bad.err;
    EXPECT_NE(bad.err.find("--compute"), std::string::npos) << bad.err;
  }
}

}  // namespace
}  // namespace quantlab::testing
