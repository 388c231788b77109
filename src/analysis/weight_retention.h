// How much of a fine-tune each bit width keeps, from the weights alone.
//
// For every tensor the quantizer would quantize (quant::make_quant_plan, so the analysis follows
// `quantize`'s rules: which tensors, bits and group size per tensor, routers at 8 bits, dtype casts)
// and every bit width, with ΔW = W_fused − W_base:
//   kept      = <deq(Q(W_fused)) − W_base, ΔW> / ‖ΔW‖²   the share of ΔW that survives on average
//   cosine    = cos(deq(Q(W_fused)) − W_base, ΔW)          the retention measure: cos² is the share of
//                                                          the change that is fine-tune, not rounding
//                                                          noise (docs/retention.md explains why the
//                                                          projection alone stays near 1)
//   erased    = share of weights with ΔW ≠ 0 whose code in Q(W_fused) equals their code in Q(W_base)
//   steps     = RMS(ΔW) / mean |scale|                      the delta in quantization steps
// Sums are kept per tensor and added up per layer and overall, so aggregates weight each tensor by
// ‖ΔW‖² (kept, cosine) or by its count of changed weights (erased).
//
// The fused weights come from a fused checkpoint (--fused) or are made in memory, row by row, from the
// base and a LoRA adapter (--adapter), rounded to the base's dtype as `quantlab fuse` writes them.
// Streaming: jobs of a few rows on all threads, each reading its rows once for all bit widths.
// Results do not depend on the thread count (jobs reduce in order).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/thread_pool.h"

namespace quantlab::analysis {

struct WeightRetentionOptions {
  std::string base_dir;
  std::string adapter_dir;  // exactly one of adapter_dir and fused_dir
  std::string fused_dir;
  std::vector<int> bits = {2, 3, 4, 5, 6, 7, 8};
  int group_size = 64;
  bool show_progress = true;
  // A quantized model (any rounding method, issue 21) to measure instead of quantizing to nearest
  // here: `bits` then holds its one width. Its codes are read as stored and dequantized; the erased
  // share is not measured (another method's groups have other scales than the base's nearest codes).
  std::string quantized_dir;
};

// Additive sums for one tensor (or layer, or model) at one bit width.
struct RetentionSums {
  double delta_sq = 0;   // ‖ΔW‖²
  double kept_dot = 0;   // <deq(Q(W_fused)) − W_base, ΔW>
  double kept_sq = 0;    // ‖deq(Q(W_fused)) − W_base‖²
  uint64_t changed = 0;  // weights with ΔW ≠ 0
  uint64_t erased = 0;   // of those, code(Q(W_fused)) == code(Q(W_base))
  double scale_abs_sum = 0;  // Σ |scale| over the groups of Q(W_fused) holding changed weights
  uint64_t groups = 0;

  void add(const RetentionSums& o);
  double kept() const;          // NaN when ‖ΔW‖ = 0
  double cosine() const;        // NaN when either side is 0
  double erased_share() const;  // NaN when nothing changed
  double delta_in_steps() const;
};

struct TensorRetention {
  std::string name;   // output tensor name (stacked experts: "…switch_mlp.gate_proj.weight")
  int layer = -1;     // model.layers.N, or -1 (embeddings, head)
  int64_t numel = 0;
  std::vector<int> bits;             // per width: the bits this tensor gets (routers stay at 8)
  std::vector<RetentionSums> sums;   // per width, in WeightRetentionOptions::bits order
};

struct LayerRetention {
  int layer = -1;
  std::vector<RetentionSums> sums;  // per width
};

struct WeightRetention {
  std::vector<int> bits;
  int group_size = 64;
  std::string source;  // "adapter" or "fused"
  std::vector<TensorRetention> tensors;  // only tensors with ΔW ≠ 0, in plan order
  std::vector<LayerRetention> layers;    // ascending layer; -1 (other) first when present
  std::vector<RetentionSums> overall;    // per width
  double seconds = 0;
};

WeightRetention analyze_weight_retention(const WeightRetentionOptions& options, ThreadPool& pool);

// Layers ordered by where the fine-tune is lost first. The projection (kept) stays near 1 even at 2
// bits: rounding acts like dither, so the delta survives on average while each weight gets a full
// step of noise. What drowns the fine-tune is that noise, which the cosine measures
// (cos² = signal / (signal + noise) along the changed weights). A layer is lost at the highest width
// where its cosine falls below `threshold` (default 1/√2: the noise is as large as the delta); 0 when
// that never happens. Higher loss widths come first, ties by lower cosine at the lowest width.
struct LayerLoss {
  int layer = -1;
  int loss_bits = 0;
  double cosine_at_lowest = 0;
};
std::vector<LayerLoss> layers_lost_first(const WeightRetention& r, double threshold = 0.7071067811865476);

}  // namespace quantlab::analysis
