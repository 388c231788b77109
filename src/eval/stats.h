// Statistics for small evaluation suites, where a handful of queries decides a verdict and the user
// must be told how much (or how little) the numbers can resolve.
#pragma once

#include <cstddef>
#include <vector>

namespace quantlab::eval {

struct Interval {
  double low = 0, high = 0;
};

// Wilson score interval for `successes` of `n` at confidence given by z (1.959964 for 95 %).
Interval wilson_interval(size_t successes, size_t n, double z = 1.959963984540054);

// Exact two-sided McNemar test on paired outcomes: b = pairs right only under A, c = right only under B.
// p = min(1, 2 * P[X <= min(b, c)]) with X ~ Binomial(b + c, 1/2); 1 when b + c == 0.
double mcnemar_exact_p(size_t b, size_t c);

// Spearman rank correlation (average ranks for ties); NaN when either side is constant.
double spearman(const std::vector<double>& x, const std::vector<double>& y);

// The smallest accuracy difference (in fraction of queries) a paired suite of n queries could show as
// significant at alpha = 0.05 in the best case (all discordant pairs one way): the user is warned when
// a comparison is below this resolution.
double min_detectable_difference(size_t n);

struct Summary {
  double mean = 0, median = 0, stddev = 0, min = 0, max = 0;
  size_t n = 0;
};
Summary summarize(std::vector<double> values);

}  // namespace quantlab::eval
