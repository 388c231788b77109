#include "model/sampler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace quantlab::model {

int32_t argmax(std::span<const float> logits) {
  QL_CHECK(!logits.empty(), "argmax of no logits");
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

Sampler::Sampler(SamplerOptions options) : options_(options), rng_(options.seed) {
  if (!(options_.temperature >= 0.0f)) fail(ErrorKind::kUsage, "temperature must be >= 0, got {}", options_.temperature);
  if (options_.top_k < 0) fail(ErrorKind::kUsage, "top-k must be >= 0, got {}", options_.top_k);
  if (!(options_.top_p > 0.0f && options_.top_p <= 1.0f))
    fail(ErrorKind::kUsage, "top-p must be in (0, 1], got {}", options_.top_p);
}

double Sampler::uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

int32_t Sampler::sample(std::span<const float> logits) {
  if (options_.temperature == 0.0f) return argmax(logits);
  // Candidates by descending logit (ties: lower id first), cut to top-k.
  order_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) order_[i] = static_cast<int32_t>(i);
  const size_t k = options_.top_k > 0 ? std::min<size_t>(options_.top_k, logits.size()) : logits.size();
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(order_.begin(), order_.begin() + static_cast<ptrdiff_t>(k), order_.end(), by_logit);
  order_.resize(k);
  // Softmax of logit / temperature over the candidates, in double.
  probs_.resize(k);
  const double top = logits[order_[0]];
  double total = 0;
  for (size_t i = 0; i < k; ++i) total += probs_[i] = std::exp((logits[order_[i]] - top) / options_.temperature);
  // Nucleus: the shortest prefix whose probability mass reaches top_p.
  size_t keep = k;
  if (options_.top_p < 1.0f) {
    double mass = 0;
    for (size_t i = 0; i < k; ++i) {
      mass += probs_[i] / total;
      if (mass >= options_.top_p) { keep = i + 1; break; }
    }
  }
  double kept = 0;
  for (size_t i = 0; i < keep; ++i) kept += probs_[i];
  double target = uniform() * kept;
  for (size_t i = 0; i < keep; ++i) {
    target -= probs_[i];
    if (target < 0) return order_[i];
  }
  return order_[keep - 1];
}

}  // namespace quantlab::model
