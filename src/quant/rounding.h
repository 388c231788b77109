// The rounding of a quantized tensor's codes (quant/rounding_method.h names the methods; quant/gptq.h has
// the mathematics): what each method needs beside the weights, and the GPTQ factor of one source. All
// three methods write the same MLX affine layout.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/safetensors.h"
#include "quant/gptq.h"
#include "quant/gptq_low_rank.h"
#include "quant/plan.h"
#include "quant/rounding_method.h"

namespace quantlab::quant {

struct RoundingOptions {
  // Every quantized module's method, unless the plan gives the module its own (OutputTensor::method).
  RoundingMethod method = RoundingMethod::kRtn;
  GptqOptions gptq;
  double delta_weight = 1.0;  // λ of quant/gptq.h's delta weighting (docs/rounding.md)
  // E[x xᵀ] of each Linear's input by module path (the plan's names; switch_mlp paths for experts):
  // experts × cols × cols values, one matrix per expert in order (calibration's ModuleStats::xxt).
  std::map<std::string, std::vector<float>> moments;  // float, as the statistics file stores them
  // Stacked expert modules whose calibration kept the routed inputs instead (too many experts × cols²):
  // GPTQ in low-rank form per expert where that is cheaper (quant/gptq_low_rank.h). Modules that read
  // the same inputs (gate_proj and up_proj) share one object, and so share their factors.
  std::map<std::string, std::shared_ptr<const RoutedInputs>> routed_inputs;
  std::string base_dir;  // delta: the base model the fused input was made from (float, same names)
  // delta without a base: ΔWᵀΔW ([cols, cols]) of a source tensor, from the fine-tune's adapter (the
  // CLI supplies it from analysis::FusedRows; quant cannot read adapters' module mapping itself).
  // Set, it is used instead of base_dir; adapter_dir is what the plan records.
  std::function<std::vector<double>(const std::string& source, int64_t cols)> delta_gram;
  std::string adapter_dir;
  // Layer 0's attention inputs are the normed embedding rows of the tokens the calibration saw; their
  // E[x xᵀ] is mixed with the whole vocabulary's: H = (1 − vocab_prior)·H + vocab_prior·H_vocabulary
  // (analysis/vocabulary_prior.h sets the matrices, one shared by q/k/v; docs/rounding.md). 0: off.
  double vocab_prior = 0.0;
  std::map<std::string, std::shared_ptr<const std::vector<double>>> vocabulary_moments;  // by module
  // The statistics were recorded sequentially (each module's inputs with the modules before it rounded;
  // analysis/sequential_calibration.h), not on the float model: recorded in quantlab_plan.json.
  bool sequential = false;
};

// ΔᵀΔ ([cols, cols]) of a [rows, cols] change read in row chunks (never the whole tensor at once):
// fill(first, last, out) writes rows [first, last) of Δ into out and returns false when they are all
// zero (the chunk is then skipped).
std::vector<double> gram_by_row_chunks(int64_t rows, int64_t cols,
                                       const std::function<bool(int64_t, int64_t, std::vector<float>&)>& fill);

// The base model delta rounding reads fused − base from: opened when the plan rounds a module with delta
// and no adapter's delta_gram is set; nullopt otherwise. Error(kUsage) when it is needed and not given.
std::optional<io::ModelWeights> open_delta_base(const QuantPlan& plan, const RoundingOptions& options);

// The method tensor `t` is rounded with: its plan's own, else the options'.
RoundingMethod method_of(const OutputTensor& t, const RoundingOptions& options);
// Whether any quantized tensor of the plan is rounded with `method`.
bool plan_uses(const QuantPlan& plan, const RoundingOptions& options, RoundingMethod method);

// Which modules of the plan are rounded with GPTQ: quantized, with recorded moments, and not an
// embedding table (its rows are looked up, not multiplied by an input; a tied head shares it).
bool uses_gptq(const OutputTensor& t, const RoundingOptions& options);

// The factor for source `source` (expert index for stacked experts) of tensor `t`: its moments,
// delta-weighted against `base` when the method is delta. Throws Error(kInvalidInput) naming the tensor
// when the moments or the base tensor do not fit it.
GptqFactor rounding_factor(const OutputTensor& t, size_t source, const io::ModelWeights& weights,
                           const io::ModelWeights* base, const RoundingOptions& options, ThreadPool& pool);

// Whether two sources get the same factor: plain GPTQ with equal second moments, as q/k/v and gate/up
// have (they read the same input), so one factorisation serves them all.
bool shares_factor(const OutputTensor& a, size_t source_a, const OutputTensor& b, size_t source_b,
                   const RoundingOptions& options);

}  // namespace quantlab::quant
