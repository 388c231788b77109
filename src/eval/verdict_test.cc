#include "eval/verdict.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/stats.h"
#include "eval/suite_size.h"

#include <fmt/format.h>

#include <algorithm>

namespace quantlab::eval {
namespace {

ModelFigures baseline_figures() {
  ModelFigures f;
  f.name = "q8";
  f.accuracy_pct = 100;
  f.disk_bytes = 1000000;
  f.memory_bytes = 2000000;
  f.decode_tps = 100;
  f.bits = 8;
  return f;
}

// A candidate that sits exactly on every optimal threshold of the default criteria.
ModelFigures optimal_on_the_edge() {
  ModelFigures f = baseline_figures();
  f.name = "q6";
  f.bits = 6;
  f.disk_bytes = 700000;     // 30 % smaller
  f.memory_bytes = 1500000;  // 25 % less
  f.decode_tps = 110;        // 1.1x
  return f;
}

PairedAccuracy all_right(size_t n) { return compare_paired(std::vector<bool>(n, true), std::vector<bool>(n, true)); }

const CriterionCheck& check_of(const Comparison& c, Level level, const std::string& rule) {
  for (const auto& k : c.checks)
    if (k.level == level && k.rule == rule) return k;
  ADD_FAILURE() << "no check " << rule;
  return c.checks.front();
}

bool has_warning(const Comparison& c, const std::string& needle) {
  for (const auto& w : c.warnings)
    if (w.find(needle) != std::string::npos) return true;
  return false;
}

TEST(Verdict, OnEveryOptimalThresholdIsOptimal) {
  const Comparison c = compare_models(default_criteria(), baseline_figures(), optimal_on_the_edge(), all_right(40));
  EXPECT_EQ(c.verdict, Verdict::kOptimal);
  EXPECT_NEAR(c.disk_smaller_pct, 30.0, 1e-9);
  EXPECT_NEAR(c.memory_less_pct, 25.0, 1e-9);
  EXPECT_NEAR(c.speed_ratio, 1.1, 1e-12);
  EXPECT_EQ(c.checks.size(), 8u);  // four rules at two levels
  for (const auto& k : c.checks) EXPECT_TRUE(k.passed) << k.text;
  EXPECT_TRUE(c.failing.empty());
  EXPECT_EQ(c.next_steps, std::vector<NextStep>{NextStep::kSwitch});
}

// Each rule, each level: a value on the threshold passes, one just past it fails.
// The thresholds come from default_criteria(), so the test follows docs/criteria.md.
struct RuleCase {
  std::string rule;
  std::optional<double> CriteriaLevel::*field;
  double step;  // how far past the threshold to fail
  void (*apply)(ModelFigures&, double);
};

class EachRule : public ::testing::TestWithParam<RuleCase> {};

TEST_P(EachRule, BothSidesOfBothThresholds) {
  const RuleCase& rc = GetParam();
  const Criteria criteria = default_criteria();
  const double optimal_edge = *(criteria.optimal.*rc.field), viable_edge = *(criteria.minimum_viable.*rc.field);
  ASSERT_GT(optimal_edge, viable_edge + rc.step);
  struct Probe {
    double value;
    bool optimal_passes, viable_passes;
    Verdict verdict;
  };
  const Probe probes[] = {
      {optimal_edge, true, true, Verdict::kOptimal},
      {optimal_edge - rc.step, false, true, Verdict::kMinimumViable},
      {viable_edge, false, true, Verdict::kMinimumViable},
      {viable_edge - rc.step, false, false, Verdict::kFailure},
  };
  for (const Probe& p : probes) {
    ModelFigures cand = optimal_on_the_edge();
    rc.apply(cand, p.value);
    const Comparison c = compare_models(criteria, baseline_figures(), cand, all_right(40));
    SCOPED_TRACE(rc.rule + " at " + std::to_string(p.value));
    EXPECT_EQ(check_of(c, Level::kOptimal, rc.rule).passed, p.optimal_passes);
    EXPECT_EQ(check_of(c, Level::kMinimumViable, rc.rule).passed, p.viable_passes);
    EXPECT_EQ(c.verdict, p.verdict);
    if (p.verdict != Verdict::kOptimal) {
      ASSERT_EQ(c.failing.size(), 1u);  // only this rule decided
      EXPECT_EQ(c.failing[0],
                check_of(c, p.verdict == Verdict::kFailure ? Level::kMinimumViable : Level::kOptimal, rc.rule).text);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(DefaultCriteria, EachRule,
                         ::testing::Values(RuleCase{"accuracy_min_pct", &CriteriaLevel::accuracy_min_pct, 2.5,
                                                    [](ModelFigures& f, double v) { f.accuracy_pct = v; }},
                                           RuleCase{"disk_smaller_pct", &CriteriaLevel::disk_smaller_pct, 0.1,
                                                    [](ModelFigures& f, double v) {
                                                      f.disk_bytes =
                                                          static_cast<uint64_t>(1000000 * (1 - v / 100) + 0.5);
                                                    }},
                                           RuleCase{"memory_less_pct", &CriteriaLevel::memory_less_pct, 0.1,
                                                    [](ModelFigures& f, double v) {
                                                      f.memory_bytes =
                                                          static_cast<uint64_t>(2000000 * (1 - v / 100) + 0.5);
                                                    }},
                                           RuleCase{"speed_ratio", &CriteriaLevel::speed_ratio, 0.01,
                                                    [](ModelFigures& f, double v) { f.decode_tps = 100 * v; }}),
                         [](const auto& info) { return info.param.rule; });

TEST(Verdict, ARuleLeftOutIsNotChecked) {
  Criteria c = default_criteria();
  c.optimal.speed_ratio.reset();
  c.minimum_viable.speed_ratio.reset();
  ModelFigures slow = optimal_on_the_edge();
  slow.decode_tps = 10;
  const Comparison r = compare_models(c, baseline_figures(), slow, all_right(40));
  EXPECT_EQ(r.verdict, Verdict::kOptimal);
  EXPECT_EQ(r.checks.size(), 6u);
}

TEST(Verdict, ViableNamesTheOptimalRulesItMissed) {
  ModelFigures cand = optimal_on_the_edge();
  cand.accuracy_pct = 90;
  cand.decode_tps = 100;
  const Comparison c = compare_models(default_criteria(), baseline_figures(), cand, all_right(40));
  EXPECT_EQ(c.verdict, Verdict::kMinimumViable);
  ASSERT_EQ(c.failing.size(), 2u);
  EXPECT_NE(c.failing[0].find("accuracy 90.0 %"), std::string::npos) << c.failing[0];
  EXPECT_NE(c.failing[1].find("decode speed 1.000x"), std::string::npos) << c.failing[1];
  // 90 % where the baseline scores 100 %: precision where the fine-tune lives is what reaches optimal.
  EXPECT_EQ(c.next_steps,
            (std::vector<NextStep>{NextStep::kSwitch, NextStep::kTryMixedPlan, NextStep::kTryMoreBits}));
  EXPECT_NE(c.advice.find("if its savings matter"), std::string::npos) << c.advice;
}

// Paired outcomes of n queries: `both_right` right under both, `lost` right under the baseline only,
// `gained` under the candidate only, the rest wrong under both.
PairedAccuracy paired(size_t n, size_t both_right, size_t lost, size_t gained) {
  std::vector<bool> base(n, false), cand(n, false);
  size_t i = 0;
  for (size_t k = 0; k < both_right; ++k, ++i) base[i] = cand[i] = true;
  for (size_t k = 0; k < lost; ++k, ++i) base[i] = true;
  for (size_t k = 0; k < gained; ++k, ++i) cand[i] = true;
  return compare_paired(base, cand);
}

bool has_step(const Comparison& c, NextStep s) {
  return std::find(c.next_steps.begin(), c.next_steps.end(), s) != c.next_steps.end();
}

// The demo's seed5 case: 8-bit and 6-bit both score 2/5, the baseline itself fails the accuracy rule,
// and 6-bit g64 is 23.5 % smaller than 8-bit g64 (the size rule wants 25 %).
TEST(Causes, EqualAccuraciesBothFailingIsASuiteProblemNotALoss) {
  ModelFigures base = baseline_figures(), cand = optimal_on_the_edge();
  base.accuracy_pct = cand.accuracy_pct = 40;
  cand.disk_bytes = 765000;
  cand.memory_bytes = 1530000;
  const Comparison c = compare_models(default_criteria(), base, cand, paired(5, 2, 0, 0));
  EXPECT_EQ(c.verdict, Verdict::kFailure);
  EXPECT_EQ(c.problems, (std::vector<Problem>{Problem::kSuite, Problem::kSize}));
  const CriterionCheck& acc = check_of(c, Level::kMinimumViable, "accuracy_min_pct");
  EXPECT_TRUE(acc.baseline_fails);
  EXPECT_EQ(acc.relation, Relation::kNotWorse);
  EXPECT_NE(acc.cause.find("like the baseline q8 (40.0 %), and not worse: 0 lost, 0 gained"), std::string::npos)
      << acc.cause;
  // No claim of lost accuracy where the accuracies are equal.
  EXPECT_EQ(c.advice.find("loses accuracy"), std::string::npos) << c.advice;
  EXPECT_EQ(c.advice.find("7-bit"), std::string::npos) << c.advice;
  EXPECT_NE(c.advice.find("the suite, not the quantization, is what fails"), std::string::npos) << c.advice;
  const size_t needed = suite_size({40, 20, 0.05, 0.8, 20.0}).queries;
  EXPECT_EQ(c.suite_need.queries, needed);
  EXPECT_NE(c.advice.find(fmt::format("grow the suite to {} queries", needed)), std::string::npos) << c.advice;
  EXPECT_NE(c.advice.find("also, q6 saves too little: disk 23.5 % smaller >= 25 %: fails"), std::string::npos)
      << c.advice;
  EXPECT_EQ(c.next_steps, (std::vector<NextStep>{NextStep::kKeepBaseline, NextStep::kGrowSuite,
                                                 NextStep::kTryLargerGroupOrFewerBits, NextStep::kTryMixedPlan}));
  ASSERT_FALSE(c.options.empty());
  EXPECT_EQ(c.options[0].command, "quantlab suite-size --baseline-acc 40 --drop 20 --discordance 20");
  EXPECT_TRUE(has_warning(c, fmt::format("the suite is too small for the accuracy rules: 5 queries")));
}

TEST(Causes, CandidateWorseAndResolvedIsAnAccuracyProblem) {
  ModelFigures cand = optimal_on_the_edge();
  cand.accuracy_pct = 75;  // 30 of 40, all 10 lost right under the baseline: p = 2 / 2^10
  const Comparison c = compare_models(default_criteria(), baseline_figures(), cand, paired(40, 30, 10, 0));
  EXPECT_EQ(c.verdict, Verdict::kFailure);
  EXPECT_EQ(c.problems, std::vector<Problem>{Problem::kAccuracy});
  const CriterionCheck& acc = check_of(c, Level::kMinimumViable, "accuracy_min_pct");
  EXPECT_FALSE(acc.baseline_fails);
  EXPECT_EQ(acc.relation, Relation::kWorse);
  EXPECT_NE(c.advice.find("keep q8; q6 loses accuracy: 75.0 % < 80 %, where the baseline q8 passes (100.0 %), and "
                          "worse: 10 lost, 0 gained, exact McNemar p = 0.00195"),
            std::string::npos)
      << c.advice;
  EXPECT_EQ(c.next_steps, (std::vector<NextStep>{NextStep::kKeepBaseline, NextStep::kTryMixedPlan,
                                                 NextStep::kTryMoreBits}));
  cand.moe = true;  // the routers too, before one bit more
  const Comparison moe = compare_models(default_criteria(), baseline_figures(), cand, paired(40, 30, 10, 0));
  EXPECT_EQ(moe.next_steps, (std::vector<NextStep>{NextStep::kKeepBaseline, NextStep::kTryMixedPlan,
                                                   NextStep::kPinRouters, NextStep::kTryMoreBits}));
}

TEST(Causes, CandidateWorseButUnresolved) {
  ModelFigures base = baseline_figures(), cand = optimal_on_the_edge();
  base.accuracy_pct = 85;  // 17 of 20
  cand.accuracy_pct = 70;  // 14 of 20: 3 lost, p = 0.25
  Comparison c = compare_models(default_criteria(), base, cand, paired(20, 14, 3, 0));
  EXPECT_EQ(c.problems, std::vector<Problem>{Problem::kAccuracy});  // the baseline passes 80 %: not the suite
  EXPECT_EQ(check_of(c, Level::kMinimumViable, "accuracy_min_pct").relation, Relation::kCannotTell);
  EXPECT_NE(c.advice.find("worse or not, 20 queries cannot tell: 3 lost, 0 gained, exact McNemar p = 0.25"),
            std::string::npos)
      << c.advice;
  // The same drop under a baseline that fails the rule itself: not shown worse, so the suite first.
  base.accuracy_pct = 75;
  cand.accuracy_pct = 60;
  c = compare_models(default_criteria(), base, cand, paired(20, 12, 3, 0));
  EXPECT_EQ(c.problems, std::vector<Problem>{Problem::kSuite});
  EXPECT_EQ(c.advice.find("loses accuracy"), std::string::npos) << c.advice;
}

TEST(Causes, SizeFailureOnly) {
  ModelFigures cand = baseline_figures();
  cand.name = "q7";
  cand.bits = 7;
  cand.group_size = 64;
  cand.disk_bytes = 880000;  // 12 % smaller
  cand.memory_bytes = 1760000;
  const Comparison c = compare_models(default_criteria(), baseline_figures(), cand, all_right(40));
  EXPECT_EQ(c.verdict, Verdict::kFailure);
  EXPECT_EQ(c.failing.size(), 2u);  // disk and memory
  EXPECT_EQ(c.problems, std::vector<Problem>{Problem::kSize});
  EXPECT_NE(c.advice.find("keep q8; q7 saves too little though it keeps the accuracy: disk 12.0 % smaller >= 25 %: "
                          "fails; memory 12.0 % less >= 20 %: fails"),
            std::string::npos)
      << c.advice;
  EXPECT_EQ(c.next_steps, (std::vector<NextStep>{NextStep::kKeepBaseline, NextStep::kTryLargerGroupOrFewerBits,
                                                 NextStep::kTryMixedPlan}));
  EXPECT_TRUE(c.options.empty());  // plan-based options come from bench (bench/next_options.h)
}

TEST(Causes, SpeedWithinNoiseOrBeyondIt) {
  ModelFigures base = baseline_figures(), cand = optimal_on_the_edge();
  cand.decode_tps = 98;  // 0.98x < 1.0x, measured once: 2 % away
  Comparison c = compare_models(default_criteria(), base, cand, all_right(40));
  EXPECT_EQ(c.problems, std::vector<Problem>{Problem::kSpeed});
  EXPECT_EQ(check_of(c, Level::kMinimumViable, "speed_ratio").relation, Relation::kCannotTell);
  EXPECT_TRUE(has_step(c, NextStep::kRepeatSpeedRuns));
  EXPECT_NE(c.advice.find("q6 is slower: decode speed 0.980x >= 1x: fails (within 5 % of the threshold, measured in "
                          "one run: cannot tell)"),
            std::string::npos)
      << c.advice;
  base.runs = cand.runs = 5;
  base.decode_tps_rel_spread = cand.decode_tps_rel_spread = 0.002;
  cand.decode_tps = 50;
  c = compare_models(default_criteria(), base, cand, all_right(40));
  EXPECT_EQ(check_of(c, Level::kMinimumViable, "speed_ratio").relation, Relation::kWorse);
  EXPECT_FALSE(has_step(c, NextStep::kRepeatSpeedRuns));
  EXPECT_EQ(c.next_steps, std::vector<NextStep>{NextStep::kKeepBaseline});
}

TEST(NextStep, AFloatCandidateHasNothingToSave) {
  ModelFigures f16 = baseline_figures();
  f16.name = "f16";
  f16.bits = 0;
  f16.disk_bytes = 1900000;
  f16.memory_bytes = 3800000;
  const Comparison c = compare_models(default_criteria(), baseline_figures(), f16, all_right(40));
  EXPECT_EQ(c.verdict, Verdict::kFailure);
  EXPECT_EQ(c.next_steps, std::vector<NextStep>{NextStep::kKeepBaseline});
  EXPECT_NE(c.advice.find("f16 stores more bits per weight than it"), std::string::npos) << c.advice;
  EXPECT_NEAR(c.disk_smaller_pct, -90.0, 1e-9);
}

TEST(Paired, CountsFlipsEachWayWithExactMcNemar) {
  const std::vector<bool> base = {true, true, true, true, false, false, true, true};
  const std::vector<bool> cand = {true, false, false, true, true, false, false, true};
  const PairedAccuracy p = compare_paired(base, cand);
  EXPECT_EQ(p.n, 8u);
  EXPECT_EQ(p.both_right, 3u);
  EXPECT_EQ(p.both_wrong, 1u);
  EXPECT_EQ(p.lost, 3u);
  EXPECT_EQ(p.gained, 1u);
  EXPECT_DOUBLE_EQ(p.difference_pct, -25.0);
  EXPECT_DOUBLE_EQ(p.mcnemar_p, 0.625);  // 2 * P[Bin(4, 1/2) <= 1] = 2 * 5/16
  EXPECT_THROW(compare_paired(base, {true}), Error);
}

TEST(Warnings, FiveQueriesCannotResolveAnything) {
  const Comparison c = compare_models(default_criteria(), baseline_figures(), optimal_on_the_edge(), all_right(5));
  EXPECT_TRUE(has_warning(c, "5 queries cannot show any accuracy difference as significant"));
  // 5/5 has a 95 % interval of [56.6 %, 100 %], which contains the 80 % threshold.
  EXPECT_TRUE(has_warning(c, "contains the minimum-viable threshold"));
}

TEST(Warnings, Forty) {
  // All right on 40: resolution 15 points < the 20-point gap, interval [91 %, 100 %]: nothing to say.
  ModelFigures base = baseline_figures(), cand = optimal_on_the_edge();
  base.runs = cand.runs = 3;  // no spread: the speed on its threshold is not in doubt
  const Comparison quiet = compare_models(default_criteria(), base, cand, all_right(40));
  EXPECT_TRUE(quiet.warnings.empty()) << quiet.warnings.front();
  // Three lost, none gained: -7.5 points, p = 0.25, not significant.
  std::vector<bool> outcomes(40, true);
  outcomes[0] = outcomes[1] = outcomes[2] = false;
  ModelFigures c37 = optimal_on_the_edge();
  c37.accuracy_pct = 92.5;
  const Comparison c = compare_models(default_criteria(), baseline_figures(), c37,
                                      compare_paired(std::vector<bool>(40, true), outcomes));
  EXPECT_TRUE(has_warning(c, "-7.5 points (3 lost, 0 gained) is not significant (exact McNemar p = 0.25)"))
      << c.warnings.front();
}

TEST(Warnings, EqualAccuracyOnASuiteCoarserThanTheRules) {
  const Comparison c = compare_models(default_criteria(), baseline_figures(), optimal_on_the_edge(), all_right(20));
  EXPECT_TRUE(has_warning(c, "resolve only differences of at least 30.0 points"));
}

TEST(Warnings, IntervalAcrossTheViableThreshold) {
  std::vector<bool> cand(40, true);
  for (int i = 0; i < 4; ++i) cand[i] = false;  // 36/40: [76.9 %, 96.0 %]
  ModelFigures f = optimal_on_the_edge();
  f.accuracy_pct = 90;
  const Comparison c =
      compare_models(default_criteria(), baseline_figures(), f, compare_paired(std::vector<bool>(40, true), cand));
  EXPECT_TRUE(has_warning(c, "[76.9 %, 96.0 %] contains the minimum-viable threshold of 80 %"));
}

TEST(Warnings, BaselineBelowTheAccuracyRule) {
  ModelFigures base = baseline_figures();
  base.accuracy_pct = 90;
  const Comparison c = compare_models(default_criteria(), base, optimal_on_the_edge(), all_right(40));
  EXPECT_TRUE(has_warning(c, "the baseline q8 itself scores 90.0 %"));
}

TEST(Warnings, SpeedNearAThreshold) {
  ModelFigures cand = optimal_on_the_edge();
  cand.decode_tps = 108;  // 1.08x, 1.8 % below 1.1x, measured once
  Comparison c = compare_models(default_criteria(), baseline_figures(), cand, all_right(40));
  EXPECT_TRUE(has_warning(c, "measured in one run"));
  ModelFigures base = baseline_figures();
  base.runs = cand.runs = 3;
  base.decode_tps_rel_spread = cand.decode_tps_rel_spread = 0.02;  // combined 2.8 %: 1.8 % is within 2 sigma
  c = compare_models(default_criteria(), base, cand, all_right(40));
  EXPECT_TRUE(has_warning(c, "within the run-to-run spread"));
  base.decode_tps_rel_spread = cand.decode_tps_rel_spread = 0.001;
  c = compare_models(default_criteria(), base, cand, all_right(40));
  EXPECT_FALSE(has_warning(c, "speed ratio"));
}

}  // namespace
}  // namespace quantlab::eval
