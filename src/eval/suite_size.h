// How many queries a paired comparison needs (issue 22): the smallest suite on which the exact
// McNemar test, two-sided at level alpha, detects a drop of D accuracy points with the given power.
//
// A quantized model is compared with its baseline query by query. Only the discordant queries (right
// under one model, wrong under the other) carry information: with R the share of discordant queries
// and D the drop, a query is "lost" with probability (R + D) / 2 and "gained" with (R - D) / 2. The
// power at n queries is computed exactly: the number of discordant queries is Binomial(n, R), and the
// test rejects, in the direction of a loss, where the lost count reaches the exact test's critical
// value. The answer is the smallest n whose power reaches the target (the power of an exact test is
// saw-toothed in n, so a slightly larger n can fall back just under the target). docs/criteria.md
// gives the formula, its sources and the normal approximation printed beside it.
#pragma once

#include <cstddef>
#include <optional>

namespace quantlab::eval {

struct SuiteSizeRequest {
  double baseline_accuracy_pct = 0;         // the baseline's accuracy on the suite (P)
  double drop_pct = 0;                      // the drop to detect, in accuracy points (D)
  double alpha = 0.05;                      // two-sided level of the exact McNemar test
  double power = 0.8;                       // probability of detecting the drop
  std::optional<double> discordance_pct;    // share of discordant queries (R); default: D (every flip a loss)
};

struct SuiteSize {
  size_t queries = 0;              // the smallest n whose exact power reaches the target
  double power = 0;                // the exact power at that n
  double discordance_pct = 0;      // R as used
  double lost_pct = 0;             // (R + D) / 2: queries right under the baseline only
  double gained_pct = 0;           // (R - D) / 2
  size_t normal_approximation = 0; // Connor (1987)'s closed form, for comparison
};

// Throws Error(kUsage) naming the flag for values out of range (P, D, R in (0, 100], R >= D, alpha
// and power in (0, 1)) and for drops no suite can show: more lost queries than the baseline gets
// right, more gained than it gets wrong, or more than a million queries needed.
SuiteSize suite_size(const SuiteSizeRequest& request);

// The exact power of the two-sided exact McNemar test at level alpha to detect a loss, at n queries
// with the given shares of lost and gained queries (fractions). Exposed for tests.
double mcnemar_power(size_t n, double lost, double gained, double alpha);

// The standard normal quantile (exposed for tests).
double normal_quantile(double p);

}  // namespace quantlab::eval
