// The one-command form of mixed precision (`quantize FUSED OUT --target-bpw X --calibration SUITE`):
// calibrate → sensitivity → allocate → quantize, the plan written beside the model
// (OUT/quantlab_plan.json, with what the allocation predicted).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "analysis/allocation.h"
#include "analysis/sensitivity.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "quant/quantizer.h"
#include "quant/rounding.h"

namespace quantlab::analysis {

// One of: bits per weight over all tensors, a byte count, or a percentage below a uniform setting.
struct BudgetSpec {
  std::optional<double> target_bpw;
  std::optional<uint64_t> max_bytes;
  std::optional<std::pair<int, int>> smaller_than;  // bits, group size
  double by_pct = 0;
};

// The budget in bytes and how to say it; Error(kUsage) unless exactly one form is given.
uint64_t resolve_budget(const Sensitivity& s, const BudgetSpec& spec, std::string* description);
// "BITS:GROUP" (the --smaller-than value).
std::pair<int, int> parse_bits_group(const std::string& text, const std::string& flag);

struct MixedQuantizeOptions {
  std::string fused_dir, out_dir;
  std::string suite_path, tools_path;     // calibration
  std::string base_dir, adapter_dir;      // the fine-tune, when known
  BudgetSpec budget;
  std::optional<Objective> objective;     // default: output (docs/mixed-precision.md says why)
  std::vector<int> bits = {2, 3, 4, 5, 6, 8};
  std::vector<int> group_sizes = {64};
  std::optional<DType> dtype;
  size_t max_tokens = 64;
  bool measure_gains = true;              // probe each module's output gain on the suite (module_gain.h)
  // The rounding methods the allocation chooses from per module (issue 21). Round-to-nearest alone:
  // errors under the inputs' E[x²] (the mixed-precision issue's proxy). With gptq or delta: every
  // candidate measured with its own rounding under the full second moments (analysis/method_sensitivity.h),
  // and the plan names each module's method.
  std::vector<quant::RoundingMethod> methods = {quant::RoundingMethod::kRtn};
  // The gptq/delta settings (damping, act-order, λ, base or adapter); the calibration fills its statistics.
  quant::RoundingOptions rounding;
  // With calibrated methods: the allocated model rounded on statistics recorded sequentially for its plan
  // (analysis/sequential_calibration.h: each module's inputs with the modules before it rounded) on the
  // whole suite, instead of the float model's. The candidates are still measured on the float model's.
  bool sequential = false;
  bool overwrite = false;
  bool show_progress = true;
};

struct MixedQuantizeResult {
  quant::QuantizeReport report;
  Allocation allocation;
  std::string budget;
};

// calibrate → sensitivity → gains → allocate → quantize.
MixedQuantizeResult quantize_to_budget(const MixedQuantizeOptions& options, ThreadPool& pool);

// The two halves, for callers that allocate several budgets from one measurement (sweep --target-bpw):
// the calibrated sensitivity (with measured gains unless options.measure_gains is false; with calibrated
// methods, the candidates rounded on one half of the suite and measured on the other, and the second
// moments of the whole suite — both halves merged — moved into *statistics, which quantize_allocated then
// needs as options.rounding's), then one allocation and its quantized model (options.out_dir,
// options.budget).
Sensitivity calibrated_sensitivity(const MixedQuantizeOptions& options, ThreadPool& pool,
                                   quant::RoundingOptions* statistics = nullptr);
MixedQuantizeResult quantize_allocated(const Sensitivity& sens, const MixedQuantizeOptions& options, ThreadPool& pool);

}  // namespace quantlab::analysis
