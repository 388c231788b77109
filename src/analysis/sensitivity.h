// Sensitivity (`quantlab sensitivity`): for every quantizable tensor of the quantization plan and every
// candidate (bits, group size), from the weights and the calibration statistics alone:
//   output error   = Σ_rows Σ_j E[x_j²] (W[r, j] − deq(Q(W))[r, j])²   (expected squared output error of
//                    the module on calibration inputs; stacked experts weighted by their own statistics)
//   fine-tune error (the base known) = Σ_rows <e, ΔW>²_m / <ΔW, ΔW>_m with e = W − deq(Q(W)), the
//                    E[x²]-weighted inner product: the part of the rounding error that lies along the
//                    fine-tune's delta, i.e. what rounding cancels of the fine-tune's effect (the literal
//                    ‖ΔW − (deq − W_base)‖² equals the output error, so it cannot tell them apart);
//   bytes          = what the module stores at that setting.
// Rows are streamed (any model size); quantization is the MLX-exact kernel, scales and biases rounded
// to the storage dtype as `quantize` writes them.
// With calibrated rounding methods (issue 21: `--method rtn,gptq,delta`) every candidate is measured once
// per method, each with its own rounding (analysis/method_sensitivity.h), and every error — round-to-
// nearest's too — under the full second moments H = E[x xᵀ] instead of their diagonal: output error
// Σ_rows e H eᵀ, fine-tune error Σ_rows (e H ΔWᵀ)² / (ΔW H ΔWᵀ). The diagonal cannot see what GPTQ's error
// compensation does (it moves error into directions the inputs do not excite), so it would rank GPTQ
// below round-to-nearest; under H the methods are in one currency and the allocation can pick per module. MoE routers keep 8 bits / group 64 (their only
// candidate), as the uniform plan does. An untied embedding (a lookup, which calibration does not see)
// weighs every column 1.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "quant/gptq.h"
#include "quant/rounding_method.h"

namespace quantlab::analysis {

struct SensitivityOptions {
  std::string fused_dir;
  std::string base_dir;     // optional: the fine-tune error needs the base (and then base or adapter)
  std::string adapter_dir;  // optional, with base_dir instead of a fused checkpoint's base comparison
  std::string stats_path;
  std::vector<int> bits = {2, 3, 4, 5, 6, 8};
  std::vector<int> group_sizes = {64};
  // Round-to-nearest is always measured (the gains are probed with it); any other method here switches
  // to the second-moment errors, which the statistics must hold (`calibrate --second-moments`).
  std::vector<quant::RoundingMethod> methods = {quant::RoundingMethod::kRtn};
  quant::GptqOptions gptq;     // gptq and delta: damping and column order, as `quantize` takes them
  double delta_weight = 1.0;   // delta: λ (docs/rounding.md)
  double vocab_prior = 0.0;    // gptq and delta: quant::RoundingOptions::vocab_prior
  // With methods: measure every error under these statistics' second moments instead of stats_path's —
  // inputs the rounding was not fitted to (GPTQ's error under the H it minimised is optimistic).
  std::string held_out_stats_path;
  bool show_progress = true;
};

struct Candidate {
  int bits = 0, group_size = 0;
  uint64_t bytes = 0;
  double output_error = 0;
  double finetune_error = 0;
  quant::RoundingMethod method = quant::RoundingMethod::kRtn;
};

// What one unit of the module's output error costs at the model's output (module_gain.h): KL(fused ‖ only
// this module quantized at bits/group_size) on the calibration suite, and gain = kl / that candidate's
// output error. bits == 0: not measured.
struct MeasuredGain {
  int bits = 0, group_size = 0;
  double kl = 0;
  double gain = 0;
};

struct TensorSensitivity {
  std::string module;
  std::vector<int64_t> shape;   // logical, [E, out, in] for stacked experts
  uint64_t parameters = 0;
  double delta_energy = 0;      // Σ <ΔW, ΔW>_m (0 without a base)
  bool pinned = false;          // a router: one candidate only
  std::vector<Candidate> candidates;
  MeasuredGain probe;
};

struct Sensitivity {
  std::string model_dir;
  bool has_base = false;
  bool has_gains = false;         // every tensor with a choice has its probe (module_gain.h)
  bool second_moments = false;    // errors under E[x xᵀ] (calibrated methods), else under its diagonal
  bool held_out = false;          // those E[x xᵀ] from other inputs than the rounding's (held_out_stats_path)
  uint64_t fixed_bytes = 0;       // tensors that stay float (norms, biases)
  uint64_t fixed_parameters = 0;
  std::vector<TensorSensitivity> tensors;
};

Sensitivity analyze_sensitivity(const SensitivityOptions& options, ThreadPool& pool);

nlohmann::ordered_json sensitivity_json(const Sensitivity& s);
// Throws Error(kInvalidInput) naming the file and field.
Sensitivity read_sensitivity(const std::string& path);

}  // namespace quantlab::analysis
