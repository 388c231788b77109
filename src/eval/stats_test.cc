#include "eval/stats.h"

#include <gtest/gtest.h>

#include <cmath>

namespace quantlab::eval {
namespace {

TEST(Wilson, KnownValues) {
  // 5/5 successes: lower bound 0.5655 (standard tables for the Wilson interval).
  const auto all = wilson_interval(5, 5);
  EXPECT_NEAR(all.low, 0.5655, 1e-4);
  EXPECT_DOUBLE_EQ(all.high, 1.0);
  // 3/5 (the seed experiment's 60 %): [0.2307, 0.8824].
  const auto three = wilson_interval(3, 5);
  EXPECT_NEAR(three.low, 0.2307, 1e-4);
  EXPECT_NEAR(three.high, 0.8824, 1e-4);
  // 20/40: symmetric around 0.5, [0.3520, 0.6480].
  const auto half = wilson_interval(20, 40);
  EXPECT_NEAR(half.low, 0.3520, 1e-4);
  EXPECT_NEAR(half.high, 0.6480, 1e-4);
  EXPECT_DOUBLE_EQ(wilson_interval(0, 0).low, 0.0);
}

TEST(McNemar, ExactBinomialTails) {
  EXPECT_DOUBLE_EQ(mcnemar_exact_p(0, 0), 1.0);
  // b=0, c=5: 2 * 0.5^5 = 0.0625 (not significant with 5 flips).
  EXPECT_NEAR(mcnemar_exact_p(0, 5), 0.0625, 1e-12);
  EXPECT_NEAR(mcnemar_exact_p(6, 0), 0.03125, 1e-12);
  // b=1, c=9: 2 * (1 + 10) / 1024 = 0.021484375.
  EXPECT_NEAR(mcnemar_exact_p(1, 9), 0.021484375, 1e-12);
  // Balanced discordance is never significant.
  EXPECT_DOUBLE_EQ(mcnemar_exact_p(4, 4), 1.0);
  EXPECT_EQ(mcnemar_exact_p(3, 7), mcnemar_exact_p(7, 3));
}

TEST(Spearman, RanksWithTies) {
  EXPECT_NEAR(spearman({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0, 1e-12);
  EXPECT_NEAR(spearman({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0, 1e-12);
  // Ties get average ranks: x ranks 1,2.5,2.5,4 vs y 1,2,3,4 -> rho = 0.9486833.
  EXPECT_NEAR(spearman({1, 2, 2, 3}, {1, 2, 3, 4}), 0.9486832980505138, 1e-9);
  EXPECT_TRUE(std::isnan(spearman({1, 1, 1}, {1, 2, 3})));
}

TEST(Resolution, FiveQueriesCannotShowAnyDifference) {
  EXPECT_GT(min_detectable_difference(5), 1.0);
  EXPECT_NEAR(min_detectable_difference(40), 6.0 / 40, 1e-12);
}

TEST(Summary, MedianAndSpread) {
  const auto s = summarize({3, 1, 2, 10});
  EXPECT_DOUBLE_EQ(s.median, 2.5);
  EXPECT_DOUBLE_EQ(s.mean, 4.0);
  EXPECT_DOUBLE_EQ(s.min, 1.0);
  EXPECT_NEAR(s.stddev, std::sqrt((1 + 9 + 4 + 36) / 3.0), 1e-12);
}

}  // namespace
}  // namespace quantlab::eval
