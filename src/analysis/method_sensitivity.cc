#include "analysis/method_sensitivity.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "analysis/affine_rows.h"
#include "core/error.h"
#include "kernels/format.h"
#include "kernels/kernels.h"
#include "quant/convert.h"
#include "quant/gptq.h"
#include "quant/quantizer.h"

namespace quantlab::analysis {

namespace {

// Quantizer chunks read at a time: few enough to bound memory (4 × 2 MB of float32 per copy), enough
// for the pool's threads to share the GPTQ rounding.
constexpr int64_t kChunksPerSpan = 4;

// The bilinear form <a, b>_H = a H bᵀ of one source's inputs. Rows are first carried into the form's
// space by one matrix product: m·H for a dense H (then <a, b>_H = a · (b H)), m·Gᵀ for H = GᵀG with
// G = X/√n the routed inputs (then <a, b>_H = (a Gᵀ)·(b Gᵀ)), or m itself for H = I.
class SourceMetric {
 public:
  SourceMetric(const quant::OutputTensor& t, size_t source, const MethodContext& ctx, bool lookup)
      : cols_(static_cast<size_t>(t.cols())) {
    if (lookup) return;  // identity: a Gram form with G = I
    const auto routed = ctx.metric.routed_inputs.find(t.module);
    if (routed != ctx.metric.routed_inputs.end()) {
      matrix_ = quant::expert_inputs(*routed->second, source);
      width_ = matrix_.size() / cols_;
      const float scale = width_ ? 1.0f / std::sqrt(static_cast<float>(width_)) : 0.0f;
      for (float& v : matrix_) v *= scale;
      carries_ = true;
      return;
    }
    const auto moments = ctx.metric.moments.find(t.module);
    if (moments == ctx.metric.moments.end())
      fail_input("{}: no second moments for module '{}' (record them with `quantlab calibrate --second-moments`)",
                 ctx.stats_path, t.module);
    const size_t square = cols_ * cols_;
    if (moments->second.size() != square * t.sources.size())
      fail_input("{}: the second moments of '{}' hold {} values; its {} source(s) of {} columns need {}",
                 ctx.stats_path, t.module, moments->second.size(), t.sources.size(), cols_, square * t.sources.size());
    matrix_.assign(moments->second.begin() + static_cast<std::ptrdiff_t>(source * square),
                   moments->second.begin() + static_cast<std::ptrdiff_t>((source + 1) * square));
    width_ = cols_;
    carries_ = true;
    dense_ = true;
  }

  // m [rows, cols] carried into the form's space: [rows, width()].
  std::vector<float> carry(const std::vector<float>& m, size_t rows, ThreadPool& pool) const {
    if (!carries_) return m;
    std::vector<float> out(rows * width_);
    if (width_ == 0 || rows == 0) return out;
    kernels::MatrixView view;
    view.type = kernels::WeightType::kF32;
    view.rows = width_;
    view.cols = cols_;
    view.data = matrix_.data();
    kernels::matmul(view, m.data(), rows, out.data(), pool);  // out[i, k] = Σ_c matrix[k, c] m[i, c]
    return out;
  }

  // <a, b>_H of row r, from a's row as it is, a's carried row and b's carried row.
  double form(const float* a, const float* a_carried, const float* b_carried) const {
    const float* left = dense_ ? a : a_carried;
    double sum = 0;
    for (size_t k = 0; k < width(); ++k) sum += static_cast<double>(left[k]) * b_carried[k];
    return sum;
  }

  size_t width() const { return carries_ ? width_ : cols_; }

 private:
  size_t cols_;
  std::vector<float> matrix_;  // H [cols, cols], or G [n, cols]
  size_t width_ = 0;
  bool carries_ = false, dense_ = false;
};

// Ŵ of `rows` rows at one setting: round-to-nearest (factor null) or GPTQ with `factor`, as the file holds it.
std::vector<float> rounded_rows(const std::vector<float>& w, size_t rows, size_t cols, CandidateSetting s, DType dtype,
                                const quant::GptqFactor* factor, ThreadPool& pool) {
  const AffineRows rounded = round_affine_rows(w.data(), rows, cols, s.bits, s.group_size, dtype, factor, pool);
  const kernels::MatrixView view = rounded.view();
  std::vector<float> out(rows * cols);
  for (size_t r = 0; r < rows; ++r) kernels::dequantize_row(view, r, out.data() + r * cols);
  return out;
}

// The fine-tune's change of a span under the form: carried once, shared by every candidate.
struct SpanDelta {
  std::vector<float> carried;
  std::vector<double> energy;  // per row: ΔW H ΔWᵀ
  double total = 0;
};

SpanDelta span_delta(const SourceRows& rows, size_t n_rows, size_t cols, const SourceMetric& metric, ThreadPool& pool) {
  SpanDelta out;
  if (rows.delta.empty()) return out;
  out.carried = metric.carry(rows.delta, n_rows, pool);
  for (size_t r = 0; r < n_rows; ++r) {
    const size_t at = r * metric.width();
    out.energy.push_back(metric.form(rows.delta.data() + r * cols, out.carried.data() + at, out.carried.data() + at));
    out.total += out.energy.back();
  }
  return out;
}

// One candidate's sums over a span (output error, fine-tune error) added to `c`, row by row in order.
void add_span_errors(const SourceRows& rows, const std::vector<float>& rounded, size_t n_rows, size_t cols,
                     const SourceMetric& metric, const SpanDelta& delta, ThreadPool& pool, Candidate& c) {
  std::vector<float> e(rows.fused.size());
  for (size_t i = 0; i < e.size(); ++i) e[i] = rows.fused[i] - rounded[i];
  const std::vector<float> carried = metric.carry(e, n_rows, pool);
  const size_t width = metric.width();
  for (size_t r = 0; r < n_rows; ++r) {
    const float* er = e.data() + r * cols;
    c.output_error += metric.form(er, carried.data() + r * width, carried.data() + r * width);
    if (delta.energy.empty() || !(delta.energy[r] > 0)) continue;
    const double along = metric.form(rows.delta.data() + r * cols, delta.carried.data() + r * width,
                                     carried.data() + r * width);
    c.finetune_error += along * along / delta.energy[r];
  }
}

}  // namespace

TensorSensitivity measure_under_second_moments(const quant::OutputTensor& t,
                                               const std::vector<CandidateSetting>& settings,
                                               const MethodContext& ctx, const SourceReader& read, bool lookup,
                                               ThreadPool& pool) {
  // The candidates, in the order they are reported: every setting with rtn, then with each method.
  std::vector<quant::OutputTensor> as_method;  // t with each calibrated method the quantizer would use on it
  for (quant::RoundingMethod m : ctx.methods) {
    quant::OutputTensor with = t;
    with.method = m;
    // Quantized at the candidates' settings, whatever the default plan gave it (a width the default
    // group size does not divide stays float there).
    with.quant = io::ModuleQuant{settings.front().bits, settings.front().group_size, "affine"};
    if (m != quant::RoundingMethod::kRtn && !lookup && quant::uses_gptq(with, ctx.rounding)) as_method.push_back(with);
  }
  TensorSensitivity out;
  out.module = t.module;
  out.shape = t.shape;
  out.parameters = static_cast<uint64_t>(t.numel());
  const size_t cols = static_cast<size_t>(t.cols());
  const size_t per_source = static_cast<size_t>(t.rows()) / t.sources.size();
  for (size_t m = 0; m <= as_method.size(); ++m)
    for (const CandidateSetting& s : settings) {
      Candidate c;
      c.bits = s.bits;
      c.group_size = s.group_size;
      c.method = m == 0 ? quant::RoundingMethod::kRtn : *as_method[m - 1].method;
      c.bytes = kernels::affine_format(s.bits)->stored_bytes(static_cast<uint64_t>(t.rows()), cols, s.group_size,
                                                             t.float_dtype);
      out.candidates.push_back(c);
    }
  // Spans of whole GPTQ chunks: each chunk is rounded exactly as the quantizer rounds it.
  const int64_t span = kChunksPerSpan * std::max<int64_t>(1, quant::kGptqRowChunkElements / static_cast<int64_t>(cols));
  SourceRows rows;
  for (size_t source = 0; source < t.sources.size(); ++source) {
    const SourceMetric metric(t, source, ctx, lookup);
    std::vector<std::unique_ptr<const quant::GptqFactor>> factors;  // per calibrated method, shared by the widths
    for (const quant::OutputTensor& with : as_method)
      factors.push_back(std::make_unique<const quant::GptqFactor>(
          quant::rounding_factor(with, source, ctx.fused, ctx.base, ctx.rounding, pool)));
    for (int64_t first = 0; first < static_cast<int64_t>(per_source); first += span) {
      const int64_t last = std::min<int64_t>(static_cast<int64_t>(per_source), first + span);
      const size_t n = static_cast<size_t>(last - first);
      read(source, first, last, rows);
      const SpanDelta delta = span_delta(rows, n, cols, metric, pool);
      out.delta_energy += delta.total;
      for (size_t m = 0; m <= factors.size(); ++m)
        for (size_t k = 0; k < settings.size(); ++k) {
          const std::vector<float> rounded =
              rounded_rows(rows.fused, n, cols, settings[k], t.float_dtype, m ? factors[m - 1].get() : nullptr, pool);
          add_span_errors(rows, rounded, n, cols, metric, delta, pool, out.candidates[m * settings.size() + k]);
        }
    }
  }
  return out;
}

}  // namespace quantlab::analysis
