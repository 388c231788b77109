#include "eval/suite_size.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "eval/stats.h"

namespace quantlab::eval {

namespace {

constexpr size_t kMaxQueries = 1000000;
// Binomial terms further than this many standard deviations from the mean weigh < 1e-20: skipped.
constexpr double kTailSigmas = 10.0;

double log_binomial_pmf(size_t n, size_t k, double p) {
  if (p <= 0) return k == 0 ? 0.0 : -INFINITY;
  if (p >= 1) return k == n ? 0.0 : -INFINITY;
  return std::lgamma(n + 1.0) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1.0) + k * std::log(p) +
         (n - k) * std::log1p(-p);
}

// Indices of Binomial(n, p) that carry any weight: mean +/- kTailSigmas standard deviations.
std::pair<size_t, size_t> binomial_bulk(size_t n, double p) {
  const double mean = n * p, sd = std::sqrt(n * p * (1 - p));
  const double lo = std::floor(mean - kTailSigmas * sd - 1), hi = std::ceil(mean + kTailSigmas * sd + 1);
  return {lo <= 0 ? 0 : static_cast<size_t>(lo), std::min<double>(n, std::max(0.0, hi))};
}

// The smallest lost count x (x > d - x) at which the exact test rejects with d discordant queries;
// d + 1 when it never does. Critical values only grow with d, so they are cached across calls.
class CriticalValues {
 public:
  explicit CriticalValues(double alpha) : alpha_(alpha) {}
  size_t at(size_t d) {
    while (cache_.size() <= d) cache_.push_back(compute(cache_.size()));
    return cache_[d];
  }

 private:
  size_t compute(size_t d) const {
    // More discordant queries never need fewer losses to reject: start from the previous critical value.
    size_t x = d / 2 + 1;
    if (!cache_.empty() && cache_.back() < d) x = std::max(x, cache_.back());
    for (; x <= d; ++x)
      if (mcnemar_exact_p(x, d - x) < alpha_) return x;
    return d + 1;
  }
  double alpha_;
  std::vector<size_t> cache_;
};

double power_with(size_t n, double lost, double gained, CriticalValues& critical) {
  const double discordant = lost + gained, q = lost / discordant;
  double power = 0;
  const auto [d_lo, d_hi] = binomial_bulk(n, discordant);
  for (size_t d = d_lo; d <= d_hi; ++d) {
    const size_t x_min = critical.at(d);
    if (x_min > d) continue;
    const double weight = std::exp(log_binomial_pmf(n, d, discordant));
    const auto [x_lo, x_hi] = binomial_bulk(d, q);
    double tail = 0;
    for (size_t x = std::max(x_min, x_lo); x <= x_hi; ++x) tail += std::exp(log_binomial_pmf(d, x, q));
    power += weight * tail;
  }
  return std::min(power, 1.0);
}

void check_pct(double value, const char* flag) {
  if (!(value > 0 && value <= 100)) fail(ErrorKind::kUsage, "{} must be in (0, 100] percent, not {:g}", flag, value);
}

void check_fraction(double value, const char* flag) {
  if (!(value > 0 && value < 1)) fail(ErrorKind::kUsage, "{} must be in (0, 1), not {:g}", flag, value);
}

}  // namespace

double normal_quantile(double p) {
  QL_CHECK(p > 0 && p < 1, "quantile of {}", p);
  // Bisection on the normal CDF, 0.5 erfc(-x / sqrt 2): 100 halvings of [-40, 40] reach double precision.
  double lo = -40, hi = 40;
  for (int i = 0; i < 100; ++i) {
    const double mid = (lo + hi) / 2;
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

double mcnemar_power(size_t n, double lost, double gained, double alpha) {
  if (n == 0 || lost + gained <= 0) return 0.0;
  CriticalValues critical(alpha);
  return power_with(n, lost, gained, critical);
}

SuiteSize suite_size(const SuiteSizeRequest& r) {
  check_pct(r.baseline_accuracy_pct, "--baseline-acc");
  check_pct(r.drop_pct, "--drop");
  check_fraction(r.alpha, "--alpha");
  check_fraction(r.power, "--power");
  const double discordance_pct = r.discordance_pct.value_or(r.drop_pct);
  check_pct(discordance_pct, "--discordance");
  if (discordance_pct < r.drop_pct)
    fail(ErrorKind::kUsage, "--discordance {:g} % is below --drop {:g} %: a drop of D points needs at least D % of "
         "the queries to flip", discordance_pct, r.drop_pct);
  SuiteSize s;
  s.discordance_pct = discordance_pct;
  s.lost_pct = (discordance_pct + r.drop_pct) / 2;
  s.gained_pct = (discordance_pct - r.drop_pct) / 2;
  if (s.lost_pct > r.baseline_accuracy_pct + 1e-9)
    fail(ErrorKind::kUsage, "a drop of {:g} points with {:g} % discordance loses {:g} % of the queries, more than the "
         "{:g} % the baseline gets right", r.drop_pct, discordance_pct, s.lost_pct, r.baseline_accuracy_pct);
  if (s.gained_pct > 100 - r.baseline_accuracy_pct + 1e-9)
    fail(ErrorKind::kUsage, "{:g} % discordance with a drop of {:g} points gains {:g} % of the queries, more than the "
         "{:g} % the baseline gets wrong", discordance_pct, r.drop_pct, s.gained_pct, 100 - r.baseline_accuracy_pct);
  const double lost = s.lost_pct / 100, gained = s.gained_pct / 100, disc = lost + gained, drop = r.drop_pct / 100;
  // Connor (1987): n = (z_{1-a/2} sqrt(R) + z_{1-b} sqrt(R - D^2))^2 / D^2.
  const double za = normal_quantile(1 - r.alpha / 2), zb = normal_quantile(r.power);
  const double approx = std::pow(za * std::sqrt(disc) + zb * std::sqrt(std::max(0.0, disc - drop * drop)), 2) /
                        (drop * drop);
  s.normal_approximation = static_cast<size_t>(std::ceil(approx));
  // Coarse steps of 0.5 % from half the approximation, then one query at a time back from the first
  // step that reaches the target: a few hundred exact power evaluations whatever the answer.
  CriticalValues critical(r.alpha);
  size_t n = s.normal_approximation < 400 ? 1 : s.normal_approximation / 2;
  while (n > 1 && power_with(n, lost, gained, critical) >= r.power) n /= 2;  // started past the answer
  size_t prev = n > 1 ? n - 1 : 0;
  for (;;) {
    if (n > kMaxQueries)
      fail(ErrorKind::kUsage, "a drop of {:g} points needs more than {} queries to detect", r.drop_pct, kMaxQueries);
    if (power_with(n, lost, gained, critical) >= r.power) break;
    prev = n;
    n += std::max<size_t>(1, n / 200);
  }
  for (size_t m = prev + 1; m < n; ++m)
    if (power_with(m, lost, gained, critical) >= r.power) {
      n = m;
      break;
    }
  s.queries = n;
  s.power = power_with(n, lost, gained, critical);
  return s;
}

}  // namespace quantlab::eval
