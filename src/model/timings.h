// Where the time of a forward pass goes, for benchmarks: seconds per phase, accumulated over calls.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <string_view>

namespace quantlab::model {

enum class Phase : size_t {
  kEmbed,          // embedding rows
  kNorms,          // input / post-attention / final RMSNorm
  kAttentionProj,  // q, k, v, o projections
  kQkNormRope,     // per-head q/k RMSNorm and RoPE
  kAttention,      // scores, softmax and weighted values over the KV cache
  kMlp,            // dense SwiGLU
  kRouter,         // MoE router logits, softmax, top-k
  kExperts,        // MoE expert SwiGLUs and their weighted sum
  kHead,           // output projection to the vocabulary
  kSample,         // sampling the next token
  kCount,
};
std::string_view phase_name(Phase p);

struct Timings {
  std::array<double, static_cast<size_t>(Phase::kCount)> phase_seconds{};
  double prefill_seconds = 0;  // forward calls of more than one token
  size_t prefill_tokens = 0;
  double decode_seconds = 0;   // forward calls of exactly one token
  size_t decode_tokens = 0;

  double& operator[](Phase p) { return phase_seconds[static_cast<size_t>(p)]; }
  double operator[](Phase p) const { return phase_seconds[static_cast<size_t>(p)]; }
};

// Adds the lifetime of the object to one phase's total.
class ScopedPhase {
 public:
  ScopedPhase(Timings& t, Phase p) : slot_(t[p]), start_(std::chrono::steady_clock::now()) {}
  ~ScopedPhase() { slot_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }
  ScopedPhase(const ScopedPhase&) = delete;
  ScopedPhase& operator=(const ScopedPhase&) = delete;

 private:
  double& slot_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace quantlab::model
