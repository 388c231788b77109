// Sensitivity with the rounding method as an axis (issue 21; analysis/sensitivity.h has the definitions):
// one tensor's candidates for every (width, group size) × method, each rounded as `quantize --method`
// would round it — round-to-nearest by the MLX-exact kernel, gptq and delta through the same factor and
// row chunks as the quantizer, so on the same statistics and dtype a candidate's codes are the file's
// codes (a budget rounds its candidates on half the calibration, the model on all of it) — and every
// error measured
// under the full second moments of the module's inputs:
//   output error   Σ_rows e H eᵀ                    (e = W − Ŵ, H = E[x xᵀ] of the source)
//   fine-tune error Σ_rows (e H ΔWᵀ)² / (ΔW H ΔWᵀ)  (the part of e along the fine-tune's change)
// H comes as the calibration stored it: a dense matrix per source (e H is one product), the routed
// inputs of a MoE expert (e H eᵀ = ‖e Xᵀ‖²/n: rows·cols·n, as GPTQ's low-rank form costs), or the
// identity for an embedding table (a lookup that calibration does not see). Cost: one rounding per
// candidate and method, and one factorisation per source and calibrated method (shared by the widths).
// Rows go in spans of a few of the quantizer's GPTQ chunks, so memory stays bounded for any tensor and
// the result does not depend on the thread count.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "analysis/sensitivity.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "quant/plan.h"
#include "quant/rounding.h"

namespace quantlab::analysis {

struct CandidateSetting {
  int bits = 0, group_size = 0;
};

// Rows of one source as sensitivity reads them, [rows, cols]: the fused weights rounded to the tensor's
// float dtype (what the quantizer rounds), and with a base the fine-tune's change (empty without one).
struct SourceRows {
  std::vector<float> fused, delta;
};
// Fills `out` with rows [first, last) of source `source` of the tensor.
using SourceReader = std::function<void(size_t source, int64_t first, int64_t last, SourceRows& out)>;

struct MethodContext {
  const io::ModelWeights& fused;
  const io::ModelWeights* base = nullptr;  // delta rounding's fused − base (unless rounding.delta_gram)
  const quant::RoundingOptions& rounding;  // the statistics (moments, routed inputs) and gptq/delta settings
  const quant::RoundingOptions& metric;    // the statistics errors are measured under (often `rounding`)
  std::vector<quant::RoundingMethod> methods;
  std::string stats_path;                  // the metric's statistics file, named in messages
};

// Every candidate of `t`: each setting with round-to-nearest, and with each calibrated method of
// ctx.methods where the quantizer would use it (quant::uses_gptq: not for embedding tables). lookup:
// `t` is an untied embedding (H = I). Throws Error(kInvalidInput) naming the statistics file and the
// module when the statistics have no second moments for it.
TensorSensitivity measure_under_second_moments(const quant::OutputTensor& t,
                                               const std::vector<CandidateSetting>& settings,
                                               const MethodContext& ctx, const SourceReader& read, bool lookup,
                                               ThreadPool& pool);

}  // namespace quantlab::analysis
