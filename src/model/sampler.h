// Choosing the next token from logits: greedy (temperature 0) or temperature / top-k / top-p
// sampling from a seeded generator, so that a seed reproduces a run on any machine.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace quantlab::model {

struct SamplerOptions {
  float temperature = 0.0f;  // 0: greedy (argmax, lowest id on ties)
  int top_k = 0;             // keep the k most likely tokens; 0: all
  float top_p = 1.0f;        // keep the smallest set whose probability reaches top_p; 1: all
  uint64_t seed = 0;
};

class Sampler {
 public:
  // Throws Error(kUsage) for a negative temperature or top_k, or top_p outside (0, 1].
  explicit Sampler(SamplerOptions options);
  int32_t sample(std::span<const float> logits);
  const SamplerOptions& options() const { return options_; }

 private:
  // A uniform double in [0, 1) from 53 random bits: the same sequence on every platform, unlike
  // std::uniform_real_distribution.
  double uniform();

  SamplerOptions options_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_;  // scratch: candidate ids
  std::vector<double> probs_;   // scratch: their probabilities
};

int32_t argmax(std::span<const float> logits);

}  // namespace quantlab::model
