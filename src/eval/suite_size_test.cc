// suite-size against a brute-force simulation of the exact McNemar test (issue 22): queries drawn one
// by one as lost / gained / concordant, the test applied to each simulated suite, the rejections counted.
#include "eval/suite_size.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "eval/stats.h"

namespace quantlab::eval {
namespace {

// The share of simulated suites of n queries on which the exact test finds the loss (p < alpha and
// more lost than gained).
double simulated_power(size_t n, double lost, double gained, double alpha, int trials, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  int rejected = 0;
  for (int t = 0; t < trials; ++t) {
    size_t b = 0, c = 0;
    for (size_t i = 0; i < n; ++i) {
      const double x = u(rng);
      if (x < lost) ++b;
      else if (x < lost + gained) ++c;
    }
    if (b > c && mcnemar_exact_p(b, c) < alpha) ++rejected;
  }
  return static_cast<double>(rejected) / trials;
}

TEST(SuiteSize, MatchesABruteForceSimulationOfTheExactTest) {
  struct Case {
    double p, d, r;
  };
  // (baseline accuracy, drop, discordance) in percent.
  const Case grid[] = {{90, 20, 20}, {60, 20, 30}, {80, 10, 10}, {80, 10, 20}, {50, 15, 25}, {95, 5, 5}};
  std::mt19937_64 rng(20261206);
  for (const Case& k : grid) {
    SCOPED_TRACE(testing::Message() << "P " << k.p << " D " << k.d << " R " << k.r);
    const SuiteSize s = suite_size({k.p, k.d, 0.05, 0.8, k.r});
    const double lost = s.lost_pct / 100, gained = s.gained_pct / 100;
    EXPECT_GE(s.power, 0.8);
    // The simulated power crosses 0.8 within 5 % of the computed N: under it 5 % below, over it 5 % above.
    const size_t below = static_cast<size_t>(std::floor(0.95 * s.queries));
    const size_t above = static_cast<size_t>(std::ceil(1.05 * s.queries));
    EXPECT_LT(simulated_power(below, lost, gained, 0.05, 4000, rng), 0.8) << "N = " << s.queries;
    EXPECT_GE(simulated_power(above, lost, gained, 0.05, 4000, rng), 0.8) << "N = " << s.queries;
    // The exact power agrees with the simulation at N itself (4000 trials: standard error < 0.007).
    EXPECT_NEAR(simulated_power(s.queries, lost, gained, 0.05, 4000, rng), s.power, 0.03);
  }
}

TEST(SuiteSize, OneWayFlipsNeedSixLossesAtTheFivePercentLevel) {
  // With every discordant query a loss, the test needs 6 of them (2 / 2^6 = 0.031 < 0.05; 5 give 0.0625):
  // the power at n is P[Binomial(n, D) >= 6].
  const double d = 0.2;
  for (size_t n : {10u, 30u, 41u}) {
    double below_six = 0;
    for (size_t k = 0; k < 6; ++k)
      below_six += std::exp(std::lgamma(n + 1.0) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1.0) +
                            k * std::log(d) + (n - k) * std::log(1 - d));
    EXPECT_NEAR(mcnemar_power(n, d, 0.0, 0.05), 1 - below_six, 1e-12) << n;
  }
  const SuiteSize s = suite_size({80, 20, 0.05, 0.8, std::nullopt});
  EXPECT_DOUBLE_EQ(s.discordance_pct, 20);  // the default: every flip a loss
  EXPECT_GE(mcnemar_power(s.queries, 0.2, 0, 0.05), 0.8);
  EXPECT_LT(mcnemar_power(s.queries - 1, 0.2, 0, 0.05), 0.8);
}

TEST(SuiteSize, SmallerDropsAndMoreDiscordanceNeedMoreQueries) {
  const size_t d20 = suite_size({80, 20, 0.05, 0.8, 20.0}).queries;
  const size_t d10 = suite_size({80, 10, 0.05, 0.8, 10.0}).queries;
  const size_t d10_r30 = suite_size({80, 10, 0.05, 0.8, 30.0}).queries;
  EXPECT_LT(d20, d10);
  EXPECT_LT(d10, d10_r30);
  // The normal approximation is close for large suites (within 15 %), and below the exact test's n.
  const SuiteSize big = suite_size({80, 5, 0.05, 0.8, 20.0});
  EXPECT_GT(big.queries, 500u);
  EXPECT_NEAR(static_cast<double>(big.normal_approximation) / big.queries, 1.0, 0.15);
  EXPECT_NEAR(normal_quantile(0.975), 1.959963984540054, 1e-9);
  EXPECT_NEAR(normal_quantile(0.8), 0.8416212335729143, 1e-9);
}

TEST(SuiteSize, RefusesImpossibleRequests) {
  const auto usage = [](const SuiteSizeRequest& r, const std::string& needle) {
    try {
      suite_size(r);
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kUsage);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  usage({80, 0, 0.05, 0.8, std::nullopt}, "--drop");
  usage({120, 10, 0.05, 0.8, std::nullopt}, "--baseline-acc");
  usage({80, 10, 1.5, 0.8, std::nullopt}, "--alpha");
  usage({80, 10, 0.05, 1.0, std::nullopt}, "--power");
  usage({80, 20, 0.05, 0.8, 10.0}, "below --drop");
  usage({10, 20, 0.05, 0.8, std::nullopt}, "more than the 10 % the baseline gets right");
  usage({95, 10, 0.05, 0.8, 30.0}, "more than the 5 % the baseline gets wrong");
}

}  // namespace
}  // namespace quantlab::eval
