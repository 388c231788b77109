// Killed at exact places (issue 19): every command that writes a model — quantize, dequantize, fuse,
// prune — stopped by SIGKILL after its first tensor, after a later one and just before the finished
// output is renamed into place (QUANTLAB_TEST_STOP_AT, core/interrupt.h), then run again: nothing under
// the final name after the kill, the rerun removes the dead run's temporary (with a notice), leaves no
// temporary behind and writes exactly what an uninterrupted run writes. SIGTERM at the same places
// leaves nothing at all and exits 143.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <functional>

#include "cli_support.h"

namespace quantlab::testing {
namespace {

namespace fs = std::filesystem;

// Runs quantlab ARGS with QUANTLAB_TEST_STOP_AT=stop_at.
RunResult run_stopped(const std::string& stop_at, const std::string& args) {
  setenv("QUANTLAB_TEST_STOP_AT", stop_at.c_str(), 1);
  RunResult r = run_quantlab(args);
  unsetenv("QUANTLAB_TEST_STOP_AT");
  return r;
}

// A command writing OUT, given as a function of OUT's path.
using Command = std::function<std::string(const fs::path& out)>;

// `command` killed at each of `points`, then rerun; SIGTERM at each point; every result compared with
// an uninterrupted run's model.safetensors.
void expect_survives_kills(const Command& command, const std::vector<std::string>& points) {
  TempDir tmp;
  RunResult r = run_quantlab(command(tmp / "reference"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string reference = slurp(tmp / "reference/model.safetensors");
  ASSERT_FALSE(reference.empty());
  for (const std::string& point : points) {
    SCOPED_TRACE(point);
    const fs::path work = tmp / ("at-" + point.substr(0, point.find(':')) + point.substr(point.find(':') + 1));
    fs::create_directories(work);
    r = run_stopped(point + ":KILL", command(work / "out"));
    // The shell reports a child killed by SIGKILL as 137; run_quantlab says 128 when the shell itself
    // was replaced by the child (dash execs a lone command).
    EXPECT_TRUE(r.exit_code == 137 || r.exit_code == 128) << r.exit_code << " " << r.err;
    EXPECT_FALSE(fs::exists(work / "out")) << "partial output under the final name";
    EXPECT_TRUE(has_temporary(work)) << "SIGKILL cannot clean up: its temporary should be there";

    r = run_quantlab(command(work / "out"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("left by an interrupted run"), std::string::npos) << r.err;
    EXPECT_FALSE(has_temporary(work));
    EXPECT_TRUE(slurp(work / "out/model.safetensors") == reference) << "the rerun differs from an uninterrupted run";

    fs::remove_all(work / "out");
    r = run_stopped(point + ":TERM", command(work / "out"));
    EXPECT_EQ(r.exit_code, 143) << r.err;
    EXPECT_NE(r.err.find("interrupted by SIGTERM"), std::string::npos) << r.err;
    EXPECT_TRUE(fs::is_empty(work)) << "SIGTERM left " << fs::directory_iterator(work)->path();
  }
}

const std::string kDense = shell_quote(data_path("tool-calling/dense-fused-strong-f16"));
const std::string kBase = shell_quote(data_path("tool-calling/dense-base-f16"));
const std::string kLora = shell_quote(data_path("tool-calling/dense-lora-strong"));
const std::string kMoe = shell_quote(data_path("tool-calling/moe-fused-strong-f16"));
// After the first tensor, after a later one (every model here has more than 12), before the rename.
const std::vector<std::string> kPoints = {"tensor:1", "tensor:12", "commit:1"};

TEST(KillPoints, QuantizeSurvivesKillsAnywhere) {
  expect_survives_kills([](const fs::path& out) { return "quantize " + kDense + " " + shell_quote(out) + " --bits 4 --quiet"; },
                        kPoints);
}

TEST(KillPoints, DequantizeSurvivesKillsAnywhere) {
  TempDir tmp;
  const RunResult r = run_quantlab("quantize " + kDense + " " + shell_quote(tmp / "q") + " --bits 6 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string q = shell_quote(tmp / "q");
  expect_survives_kills([&](const fs::path& out) { return "dequantize " + q + " " + shell_quote(out); }, kPoints);
}

TEST(KillPoints, FuseSurvivesKillsAnywhere) {
  expect_survives_kills([](const fs::path& out) { return "fuse " + kBase + " " + kLora + " " + shell_quote(out); },
                        kPoints);
}

TEST(KillPoints, PruneSurvivesKillsAnywhere) {
  TempDir tmp;
  const RunResult r = run_quantlab("experts " + kMoe + " --suite " +
                                   shell_quote(data_path("tool-calling/queries/seed5.jsonl")) + " --max-tokens 4 --out " +
                                   shell_quote(tmp / "e") + " --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string profile = shell_quote(tmp / "e/experts.json");
  expect_survives_kills(
      [&](const fs::path& out) { return "prune " + kMoe + " " + shell_quote(out) + " --profile " + profile + " --keep 4"; },
      kPoints);
}

TEST(KillPoints, AMalformedHookIsRefused) {
  TempDir tmp;
  const RunResult r = run_stopped("tensor", "quantize " + kDense + " " + shell_quote(tmp / "q") + " --quiet");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("QUANTLAB_TEST_STOP_AT=tensor: expected POINT:N:KILL|TERM"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

}  // namespace
}  // namespace quantlab::testing
