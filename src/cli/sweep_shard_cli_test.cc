// Sweeps across machines (issue 17): `sweep --shard 1/2` and `--shard 2/2` into separate directories,
// then `sweep merge`, give the unsharded sweep's answer and table (timings aside); shards of different
// sweeps, or an incomplete set, are refused by name.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "cli_support.h"

namespace quantlab::testing {
namespace {

using json = nlohmann::json;

// The table's rows without the columns that are timings or say whether a result was reused: the
// "of bound" column (measured decode speed over the plan's bound) sits at characters 56-63 of each row
// (cmd_sweep.cc's print_summary), and " (reused)" ends the rows a run did not measure itself.
std::string answer_table(const std::string& out) {
  std::istringstream in(out);
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.rfind("report:", 0) == 0) continue;  // names the output directory
    if (const size_t reused = line.find(" (reused)"); reused != std::string::npos) line.resize(reused);
    if (line.size() > 64) line.erase(56, 8);
    kept += line + "\n";
  }
  return kept;
}

json answer(const std::string& results_path) {
  const json j = json::parse(slurp(results_path));
  json a = {{"lowest_minimum_viable", j["lowest_minimum_viable"]}, {"lowest_optimal", j["lowest_optimal"]},
            {"smallest_minimum_viable", j["smallest_minimum_viable"]}, {"smallest_optimal", j["smallest_optimal"]}};
  for (const json& w : j["widths"])
    a["widths"].push_back({w["name"], w.value("verdict", json()), w["accuracy_pct"], w["disk_bytes"]});
  return a;
}

TEST(SweepShards, MergedShardsGiveTheUnshardedAnswer) {
  TempDir work;
  // No speed rule: the verdicts then depend on nothing timed, so two runs must agree exactly. (The
  // accuracy rules are absolute; seed5 at 32 tokens scores 40 % at every width.) 6-bit is 23 % smaller
  // than 8-bit and fails the disk rule; 4-bit passes both levels.
  std::ofstream(work / "rules.toml") << "[optimal]\naccuracy_min_pct = 30\ndisk_smaller_pct = 30\n"
                                        "[minimum_viable]\naccuracy_min_pct = 20\ndisk_smaller_pct = 25\n";
  const std::string common = shell_quote(tool_calling::kFused) + " --suite " + shell_quote(tool_calling::kSeed5) +
                             " --bits 8,6,4 --criteria " + shell_quote(work / "rules.toml") +
                             " --max-tokens 32 --no-cold --quiet --bandwidth 20";
  const RunResult whole = run_quantlab("sweep " + common + " --out " + shell_quote(work / "whole"));
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  for (const char* shard : {"1/2", "2/2"}) {
    const std::string dir = work / (std::string("s") + shard[0]);
    const RunResult r = run_quantlab("sweep " + common + " --shard " + shard + " --out " + shell_quote(dir));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir + "/results.json")) << "a shard writes no report";
  }
  EXPECT_EQ(json::parse(slurp(work / "s1/shard.json"))["measured"], json({"q8-g64", "q4-g64"}));
  EXPECT_EQ(json::parse(slurp(work / "s2/shard.json"))["measured"], json({"q6-g64"}));
  const RunResult merged = run_quantlab("sweep merge " + shell_quote(work / "merged") + " " +
                                        shell_quote(work / "s1") + " " + shell_quote(work / "s2"));
  ASSERT_EQ(merged.exit_code, 0) << merged.err;
  const json merged_answer = answer(work / "merged/results.json");
  EXPECT_EQ(merged_answer["lowest_optimal"], 4) << merged_answer.dump();  // an answer worth comparing
  EXPECT_EQ(merged_answer, answer(work / "whole/results.json"));
  EXPECT_EQ(answer_table(merged.out), answer_table(whole.out));
  EXPECT_TRUE(std::filesystem::exists(work / "merged/chart.svg"));
  EXPECT_TRUE(std::filesystem::exists(work / "merged/report.md"));

  // An incomplete set, a shard given twice, and a shard of another sweep are refused by name.
  const RunResult missing = run_quantlab("sweep merge " + shell_quote(work / "m2") + " " + shell_quote(work / "s1"));
  EXPECT_EQ(missing.exit_code, kInvalid);
  EXPECT_NE(missing.err.find("shard 2/2 is missing"), std::string::npos) << missing.err;
  const RunResult twice = run_quantlab("sweep merge " + shell_quote(work / "m3") + " " + shell_quote(work / "s1") + " " +
                                       shell_quote(work / "s1"));
  EXPECT_NE(twice.err.find("shard 1/2 is given twice"), std::string::npos) << twice.err;
  std::filesystem::copy(work / "s2", work / "other", std::filesystem::copy_options::recursive);
  json other = json::parse(slurp(work / "other/shard.json"));
  other["command"]["max_tokens"] = 64;
  std::ofstream(work / "other/shard.json") << other.dump(2);
  const RunResult foreign = run_quantlab("sweep merge " + shell_quote(work / "m4") + " " + shell_quote(work / "s1") + " " +
                                         shell_quote(work / "other"));
  EXPECT_EQ(foreign.exit_code, kInvalid);
  EXPECT_NE(foreign.err.find("shards of different sweeps: 'max_tokens' is 32 there and 64 here"), std::string::npos)
      << foreign.err;
  EXPECT_FALSE(std::filesystem::exists(work / "m4/results.json"));
  const RunResult bad = run_quantlab("sweep " + common + " --shard 3/2 --out " + shell_quote(work / "bad"));
  EXPECT_EQ(bad.exit_code, kUsage);
}

}  // namespace
}  // namespace quantlab::testing
