// The next steps of a verdict as command lines (issue 22): over constructed results on the bundled
// model quantized to 8 and 6 bits, each offered setting is one the plan predicts to pass (or says what
// still fails), ranked by precision, with the model it starts from and the measurements beside it.
#include "bench/next_options.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <optional>

#include "bench/plan_prediction.h"
#include "eval/report_text.h"
#include "quant/testing.h"
#include "quant/size_plan.h"
#include "test_support.h"

namespace quantlab::bench {
namespace {

using testing::TempDir;
using testing::tool_calling::kDev40;
using testing::tool_calling::kFused;
using testing::tool_calling::kTools;

// A measured model: its plan as bench predicts it, disk and memory taken from the plan, and the
// first `right` of `n` queries answered correctly.
eval::ModelResult measured(const std::string& name, const std::string& dir, int bits, size_t n, size_t right) {
  eval::ModelResult m;
  m.name = name;
  m.dir = dir;
  m.ok = true;
  m.info.quantized = bits > 0;
  m.info.bits = bits;
  m.info.group_size = bits > 0 ? 64 : 0;
  quant::RuntimeAssumptions runtime;
  runtime.context = 512;
  m.plan = predict_as_benched(dir, runtime).plan;
  EXPECT_TRUE(m.plan.has_value()) << dir;
  m.info.disk_bytes = m.plan->disk_bytes();
  m.memory.weights_mapped = m.plan->tensor_bytes;
  m.memory.kv_cache = m.plan->kv_cache_bytes;
  m.memory.scratch = m.plan->scratch_bytes;
  for (size_t i = 0; i < n; ++i) {
    eval::QueryResult q;
    q.id = "q" + std::to_string(i);
    q.score.correct = i < right;
    m.queries.push_back(q);
    m.accuracy.overall.total = n;
    m.accuracy.overall.correct = right;
  }
  m.speed.runs.push_back({10, 1.0, 10, 1.0, 0.1, 0.1});
  return m;
}

class NextOptions : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    work_ = new TempDir;
    quant::test_helpers::quantize_for_test(kFused, *work_ / "q8", 8);
    quant::test_helpers::quantize_for_test(kFused, *work_ / "q6", 6);
  }
  static void TearDownTestSuite() { delete work_; }

  eval::BenchResults results(size_t n, size_t base_right, size_t cand_right) {
    eval::BenchResults r;
    r.settings.baseline = "q8";
    r.settings.suite = kDev40;
    r.settings.tools = kTools;
    r.settings.criteria = eval::default_criteria();
    r.models.push_back(measured("q8", *work_ / "q8", 8, n, base_right));
    r.models.push_back(measured("q6", *work_ / "q6", 6, n, cand_right));
    eval::add_comparisons(r);
    return r;
  }
  quant::SizeEstimate plan_of(int bits, int group) {
    quant::RuntimeAssumptions runtime;
    runtime.context = 512;
    return quant::estimate_size(quant::load_plan_source(kFused), bits, group, runtime);
  }
  static TempDir* work_;
};
TempDir* NextOptions::work_ = nullptr;

// dev40: both right everywhere, 6-bit 23 % smaller where 25 % is needed, memory (a KV cache that
// dwarfs this tiny model's weights) far from its 20 %.
TEST_F(NextOptions, SizeFailureNamesThePassingSettingsWithTheirSizes) {
  eval::BenchResults r = results(40, 40, 40);
  add_next_options(r, {kFused, kDev40, kTools});
  const eval::Comparison& c = r.comparisons.at(0);
  ASSERT_EQ(c.problems, std::vector<eval::Problem>{eval::Problem::kSize});
  ASSERT_EQ(c.options.size(), 3u) << eval::render_table(r);
  // First: the most bits per weight that the plan predicts passes both size rules, found here by trying
  // every setting with fewer bits per weight than the candidate's.
  const uint64_t base_disk = r.models[0].plan->disk_bytes(), base_mem = r.models[0].plan->memory_bytes();
  const auto pct_less = [](uint64_t base, uint64_t v) { return 100.0 * (1.0 - double(v) / double(base)); };
  std::optional<quant::SizeEstimate> best;
  for (int b = 2; b <= 6; ++b)
    for (int g : {32, 64, 128}) {
      if (b == 6 && g <= 64) continue;
      const quant::SizeEstimate e = plan_of(b, g);
      if (pct_less(base_disk, e.disk_bytes()) >= 25 && pct_less(base_mem, e.memory_bytes()) >= 20 &&
          (!best || e.bits_per_weight() > best->bits_per_weight()))
        best = e;
    }
  ASSERT_TRUE(best.has_value());
  EXPECT_LT(best->bits, 6);  // the memory rule needs fewer bits than the disk rule here
  EXPECT_EQ(c.options[0].step, eval::NextStep::kTryLargerGroupOrFewerBits);
  EXPECT_EQ(c.options[0].command, fmt::format("quantlab quantize {} q{}-g{} --bits {} --group-size {}", kFused,
                                              best->bits, best->group_size, best->bits, best->group_size));
  EXPECT_NE(c.options[0].prediction.find(eval::format_bytes(best->disk_bytes()) + " on disk"), std::string::npos)
      << c.options[0].prediction;
  EXPECT_NE(c.options[0].prediction.find("passes the size rules"), std::string::npos);
  // Second: group 128 passes the disk rule alone, and says the memory rule still fails.
  EXPECT_EQ(c.options[1].command, "quantlab quantize " + kFused + " q6-g128 --bits 6 --group-size 128");
  EXPECT_NE(c.options[1].prediction.find("passes the disk rule; the memory rule (20 % less) still fails"),
            std::string::npos)
      << c.options[1].prediction;
  EXPECT_NE(c.options[1].evidence.find("q6 (6-bit g64) 100.0 %, 0 lost, 0 gained"), std::string::npos)
      << c.options[1].evidence;
  // Third: a mixed plan 25 % under the baseline's own setting, calibrated on the bench's suite.
  EXPECT_EQ(c.options[2].command, "quantlab quantize " + kFused + " mixed --smaller-than 8:64 --by 25 --calibration " +
                                      kDev40 + " --tools " + kTools);
}

TEST_F(NextOptions, AccuracyFailureRaisesPrecisionBeforeOneBitMore) {
  eval::BenchResults r = results(40, 40, 30);  // 10 lost: resolved
  add_next_options(r, {"", kDev40, kTools});   // no --source and no float model benched
  const eval::Comparison& c = r.comparisons.at(0);
  ASSERT_EQ(c.problems.front(), eval::Problem::kAccuracy);
  ASSERT_GE(c.options.size(), 2u);
  EXPECT_EQ(c.options[0].step, eval::NextStep::kTryMixedPlan);
  EXPECT_NE(c.options[0].command.find("quantlab quantize FLOAT_MODEL mixed --max-bytes " +
                                      std::to_string(r.models[1].plan->tensor_bytes)),
            std::string::npos)
      << c.options[0].command;
  EXPECT_EQ(c.options[1].step, eval::NextStep::kTryMoreBits);
  EXPECT_EQ(c.options[1].command, "quantlab quantize FLOAT_MODEL q7-g64 --bits 7 --group-size 64");
  EXPECT_NE(c.options[1].evidence.find("q8 (8-bit g64) 100.0 %"), std::string::npos) << c.options[1].evidence;
  EXPECT_NE(c.options[1].evidence.find("q6 (6-bit g64) 75.0 %, 10 lost, 0 gained"), std::string::npos)
      << c.options[1].evidence;
  // The report says what FLOAT_MODEL stands for.
  EXPECT_NE(eval::render_markdown(r).find("FLOAT_MODEL: the float model the candidates were quantized from"),
            std::string::npos);
}

TEST_F(NextOptions, TheSuiteOptionStaysFirstAndNoneExceedThree) {
  eval::BenchResults r = results(5, 2, 2);  // seed5: both 40 %
  add_next_options(r, {kFused, kDev40, kTools});
  const eval::Comparison& c = r.comparisons.at(0);
  ASSERT_EQ(c.options.size(), 3u);
  EXPECT_EQ(c.options[0].step, eval::NextStep::kGrowSuite);
  EXPECT_EQ(c.options[0].command, "quantlab suite-size --baseline-acc 40 --drop 20 --discordance 20");
  EXPECT_EQ(c.options[1].step, eval::NextStep::kTryLargerGroupOrFewerBits);
}

}  // namespace
}  // namespace quantlab::bench
