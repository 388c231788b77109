#include "analysis/weight_retention.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>

#include "analysis/fused_rows.h"
#include "core/error.h"
#include "core/progress.h"
#include "io/adapter.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "kernels/affine_reference.h"
#include "quant/convert.h"
#include "quant/plan.h"
#include "quant/quantizer.h"

namespace quantlab::analysis {

namespace {

constexpr int64_t kJobElements = 1 << 18;  // 256K values: about 4 MB of scratch per thread
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// One tensor as the analysis sees it: its source tensors (experts stacked in order) and, per width,
// the quantization the plan gives it.
struct PlannedTensor {
  const quant::OutputTensor* tensor;       // from the first width's plan
  std::vector<io::ModuleQuant> quant;      // per width
};

struct Job {
  size_t tensor;  // index into the planned tensors
  size_t source;  // index into tensor->sources
  quant::RowRange rows;
};

struct Scratch {
  std::vector<float> base, fused, delta, kept, stored;
  std::vector<uint8_t> raw;
  std::vector<uint32_t> packed_base, packed_fused;  // written by the kernel, not read: codes come from code_of
  std::vector<float> scales_base, biases_base, scales_fused, biases_fused, scales_stored, biases_stored;
};

int layer_of(const std::string& name) {
  const size_t at = name.find("layers.");
  if (at == std::string::npos) return -1;
  size_t end = at + 7;
  while (end < name.size() && std::isdigit(static_cast<unsigned char>(name[end]))) ++end;
  return end > at + 7 ? std::stoi(name.substr(at + 7, end - at - 7)) : -1;
}

// The MLX code of w in a group with this (unrounded) scale and bias: clamp(rint((w - bias) / scale)),
// the reference's own arithmetic, so the codes are exactly those `quantize` stores. Adding and
// subtracting 1.5 * 2^23 rounds to nearest even like rint for |x| < 2^22 and lets the loop vectorize.
inline float code_of(float w, float bias, float scale, float max_code) {
  constexpr float kRound = 12582912.0f;
  const float x = ((w - bias) / scale + kRound) - kRound;
  return std::min(std::max(x, 0.0f), max_code);
}

// Sums for rows of one width: quantizes base and fused rows with the plan's bits and group size and
// compares their codes and the fused model's dequantized weights (scales and biases rounded to their
// stored dtype, as `quantize` writes them) with the base.
class WidthComparer {
 public:
  WidthComparer(const io::ModuleQuant& q, DType scale_dtype, size_t cols) : q_(q), scale_dtype_(scale_dtype), cols_(cols) {}

  void compare(size_t rows, Scratch& s, RetentionSums& out) const {
    const size_t words = cols_ * q_.bits / 32, groups = cols_ / q_.group_size;
    s.packed_base.resize(rows * words);
    s.packed_fused.resize(rows * words);
    s.scales_base.resize(rows * groups);
    s.biases_base.resize(rows * groups);
    s.scales_fused.resize(rows * groups);
    s.biases_fused.resize(rows * groups);
    kernels::affine_quantize(s.base.data(), rows, cols_, q_.bits, q_.group_size, s.packed_base.data(),
                             s.scales_base.data(), s.biases_base.data());
    kernels::affine_quantize(s.fused.data(), rows, cols_, q_.bits, q_.group_size, s.packed_fused.data(),
                             s.scales_fused.data(), s.biases_fused.data());
    s.scales_stored = s.scales_fused;
    s.biases_stored = s.biases_fused;
    quant::round_to_dtype(s.scales_stored.data(), s.scales_stored.size(), scale_dtype_);
    quant::round_to_dtype(s.biases_stored.data(), s.biases_stored.size(), scale_dtype_);
    for (size_t r = 0; r < rows; ++r) compare_row(r, s, out);
  }

 private:
  void compare_row(size_t r, Scratch& s, RetentionSums& out) const {
    const size_t groups = cols_ / q_.group_size, group = static_cast<size_t>(q_.group_size);
    const float max_code = static_cast<float>(kernels::max_code(q_.bits));
    const float* base = s.base.data() + r * cols_;
    const float* fused = s.fused.data() + r * cols_;
    float* delta = s.delta.data();
    float* kept = s.kept.data();
    RetentionSums row;
    for (size_t g = 0; g < groups; ++g) {
      const size_t gi = r * groups + g;
      const float sf = s.scales_fused[gi], bf = s.biases_fused[gi], sb = s.scales_base[gi], bb = s.biases_base[gi];
      const float stored_scale = s.scales_stored[gi], stored_bias = s.biases_stored[gi];
      uint32_t changed = 0, erased = 0;
      for (size_t c = g * group; c < (g + 1) * group; ++c) {
        const float qf = code_of(fused[c], bf, sf, max_code), qb = code_of(base[c], bb, sb, max_code);
        delta[c] = fused[c] - base[c];
        // scale * q + bias in two roundings (the stored model uses one fma): at most 1 ulp apart.
        kept[c] = (stored_scale * qf + stored_bias) - base[c];
        const uint32_t moved = fused[c] != base[c];
        changed += moved;
        erased += moved & (qf == qb);
      }
      if (changed == 0) continue;
      row.changed += changed;
      row.erased += erased;
      row.scale_abs_sum += std::fabs(stored_scale);
      ++row.groups;
    }
    if (row.changed == 0) return;
    row.delta_sq = kernels::dot(delta, delta, cols_);
    row.kept_dot = kernels::dot(kept, delta, cols_);
    row.kept_sq = kernels::dot(kept, kept, cols_);
    out.add(row);
  }

  io::ModuleQuant q_;
  DType scale_dtype_;
  size_t cols_;
};

// Sums for rows of a model quantized elsewhere (any rounding): its stored codes, scales and biases
// dequantized by MLX's rule, compared with the base and the fused rows. Stacked experts: source s is
// rows [s·rows, (s+1)·rows) of the stacked tensors.
class StoredComparer {
 public:
  StoredComparer(const io::ModelWeights& model, const quant::OutputTensor& t, const io::ModuleQuant& q)
      : q_(q), cols_(static_cast<size_t>(t.cols())) {
    const std::string stem = t.name.substr(0, t.name.size() - std::string(".weight").size());
    packed_ = &model.at(t.name);
    scales_ = &model.at(stem + ".scales");
    biases_ = &model.at(stem + ".biases");
    const int64_t rows = t.numel() / t.cols();
    if (packed_->info->dtype != DType::kU32 || packed_->info->numel() * 32 != rows * t.cols() * q.bits ||
        scales_->info->numel() * q.group_size != rows * t.cols() || biases_->info->numel() != scales_->info->numel())
      fail_input("{}: tensor '{}' is not {}-bit group-{} codes of a {}x{} matrix", model.dir(), t.name, q.bits,
                 q.group_size, rows, t.cols());
  }

  void compare(size_t source, int64_t rows_per_source, const quant::RowRange& range, Scratch& s,
               RetentionSums& out) const {
    const size_t n = static_cast<size_t>(range.end - range.begin), words = cols_ * q_.bits / 32,
                 groups = cols_ / q_.group_size;
    const uint64_t first = static_cast<uint64_t>(static_cast<int64_t>(source) * rows_per_source + range.begin);
    std::vector<uint32_t> packed(n * words);
    std::vector<float> scales(n * groups), biases(n * groups);
    packed_->file->read(*packed_->info, first * words * 4, packed.size() * 4, packed.data());
    read_params(*scales_, first * groups, scales, s.raw);
    read_params(*biases_, first * groups, biases, s.raw);
    s.stored.resize(cols_);
    for (size_t r = 0; r < n; ++r) {
      kernels::dequantize_row_reference(packed.data() + r * words, scales.data() + r * groups,
                                        biases.data() + r * groups, cols_, q_.bits, q_.group_size, s.stored.data());
      RetentionSums row;
      const float* base = s.base.data() + r * cols_;
      const float* fused = s.fused.data() + r * cols_;
      for (size_t c = 0; c < cols_; ++c) {
        s.delta[c] = fused[c] - base[c];
        s.kept[c] = s.stored[c] - base[c];
        row.changed += fused[c] != base[c];
      }
      if (row.changed == 0) continue;
      for (size_t g = 0; g < groups; ++g) row.scale_abs_sum += std::fabs(scales[r * groups + g]);
      row.groups = groups;
      row.delta_sq = kernels::dot(s.delta.data(), s.delta.data(), cols_);
      row.kept_dot = kernels::dot(s.kept.data(), s.delta.data(), cols_);
      row.kept_sq = kernels::dot(s.kept.data(), s.kept.data(), cols_);
      out.add(row);
    }
  }

 private:
  static void read_params(const io::ModelWeights::Entry& e, uint64_t first, std::vector<float>& out,
                          std::vector<uint8_t>& raw) {
    const size_t size = dtype_size(e.info->dtype);
    raw.resize(out.size() * size);
    e.file->read(*e.info, first * size, raw.size(), raw.data());
    quant::load_as_f32_scalar(e.info->dtype, raw.data(), out.size(), out.data());
  }

  io::ModuleQuant q_;
  size_t cols_;
  const io::ModelWeights::Entry *packed_, *scales_, *biases_;
};

std::vector<PlannedTensor> plan_tensors(const std::vector<quant::QuantPlan>& plans, const FusedRows& rows) {
  std::vector<PlannedTensor> out;
  const auto& first = plans.front().tensors;
  for (size_t i = 0; i < first.size(); ++i) {
    if (!first[i].quant) continue;
    bool differs = false;
    for (const auto& s : first[i].sources) differs |= rows.may_differ(s);
    if (!differs) continue;
    PlannedTensor t{&first[i], {}};
    for (const auto& p : plans) t.quant.push_back(*p.tensors[i].quant);
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<Job> make_jobs(const std::vector<PlannedTensor>& tensors, const io::ModelWeights& base) {
  std::vector<Job> jobs;
  for (size_t t = 0; t < tensors.size(); ++t) {
    const auto& ot = *tensors[t].tensor;
    for (size_t s = 0; s < ot.sources.size(); ++s) {
      const int64_t rows = base.at(ot.sources[s]).info->numel() / ot.cols();
      for (const auto& r : quant::split_rows(rows, ot.cols(), kJobElements)) jobs.push_back({t, s, r});
    }
  }
  return jobs;
}

void run_job(const Job& job, const PlannedTensor& t, const FusedRows& rows, const io::ModelWeights* quantized,
             Scratch& s, std::vector<RetentionSums>& out) {
  const quant::OutputTensor& ot = *t.tensor;
  const size_t cols = static_cast<size_t>(ot.cols()), n = static_cast<size_t>(job.rows.end - job.rows.begin);
  if (!rows.read(ot.sources[job.source], job.rows.begin, job.rows.end, ot.cols(), s.base, s.fused)) return;
  // The quantizer casts to the output dtype before quantizing; so does the analysis.
  if (ot.float_dtype != ot.source_dtype) {
    quant::round_to_dtype(s.base.data(), s.base.size(), ot.float_dtype);
    quant::round_to_dtype(s.fused.data(), s.fused.size(), ot.float_dtype);
  }
  s.delta.resize(cols);
  s.kept.resize(cols);
  if (quantized) {
    const int64_t rows_per_source = ot.numel() / ot.cols() / static_cast<int64_t>(ot.sources.size());
    StoredComparer(*quantized, ot, t.quant.front()).compare(job.source, rows_per_source, job.rows, s, out.front());
    return;
  }
  for (size_t w = 0; w < t.quant.size(); ++w) WidthComparer(t.quant[w], ot.float_dtype, cols).compare(n, s, out[w]);
}

std::vector<quant::QuantPlan> make_plans(const io::ModelConfig& config, const io::ModelWeights& weights,
                                         const WeightRetentionOptions& o) {
  if (o.bits.empty()) fail(ErrorKind::kUsage, "--bits: give at least one bit width");
  std::vector<quant::QuantPlan> plans;
  const auto sources = quant::source_tensors(weights);
  for (int b : o.bits) {
    quant::PlanOptions options;
    options.bits = b;
    options.group_size = o.group_size;
    plans.push_back(quant::make_quant_plan(config, sources, options));
  }
  return plans;
}

void aggregate(WeightRetention& r) {
  std::map<int, LayerRetention> layers;
  r.overall.assign(r.bits.size(), {});
  for (const auto& t : r.tensors) {
    LayerRetention& l = layers[t.layer];
    l.layer = t.layer;
    l.sums.resize(r.bits.size());
    for (size_t w = 0; w < r.bits.size(); ++w) {
      l.sums[w].add(t.sums[w]);
      r.overall[w].add(t.sums[w]);
    }
  }
  for (auto& [index, layer] : layers) r.layers.push_back(std::move(layer));
}

}  // namespace

void RetentionSums::add(const RetentionSums& o) {
  delta_sq += o.delta_sq;
  kept_dot += o.kept_dot;
  kept_sq += o.kept_sq;
  changed += o.changed;
  erased += o.erased;
  scale_abs_sum += o.scale_abs_sum;
  groups += o.groups;
}

double RetentionSums::kept() const { return delta_sq > 0 ? kept_dot / delta_sq : kNaN; }
double RetentionSums::cosine() const {
  return delta_sq > 0 && kept_sq > 0 ? kept_dot / std::sqrt(delta_sq * kept_sq) : kNaN;
}
double RetentionSums::erased_share() const { return changed > 0 ? double(erased) / double(changed) : kNaN; }
double RetentionSums::delta_in_steps() const {
  if (changed == 0 || groups == 0 || scale_abs_sum == 0) return kNaN;
  return std::sqrt(delta_sq / double(changed)) / (scale_abs_sum / double(groups));
}

WeightRetention analyze_weight_retention(const WeightRetentionOptions& o, ThreadPool& pool) {
  const auto start = std::chrono::steady_clock::now();
  if (o.adapter_dir.empty() == o.fused_dir.empty())
    fail(ErrorKind::kUsage, "give exactly one of --adapter and --fused");
  const io::ModelWeights base = io::ModelWeights::open(o.base_dir);
  const bool from_adapter = !o.adapter_dir.empty();
  std::optional<io::ModelWeights> fused;
  if (!from_adapter) fused.emplace(io::ModelWeights::open(o.fused_dir));
  const FusedRows rows = from_adapter ? FusedRows::from_adapter(base, io::load_adapter(o.adapter_dir))
                                      : FusedRows::from_fused(base, *fused);
  // The plan follows the model being quantized: the fused one (its config decides dtypes).
  const io::ModelConfig config = io::load_model_config(from_adapter ? o.base_dir : o.fused_dir);
  const std::vector<quant::QuantPlan> plans = make_plans(config, base, o);
  const std::vector<PlannedTensor> tensors = plan_tensors(plans, rows);
  const std::vector<Job> jobs = make_jobs(tensors, base);
  std::optional<io::ModelWeights> quantized;
  if (!o.quantized_dir.empty()) {
    if (o.bits.size() != 1) fail(ErrorKind::kUsage, "a quantized model is measured at its one width");
    quantized.emplace(io::ModelWeights::open(o.quantized_dir));
  }

  std::vector<std::vector<RetentionSums>> job_sums(jobs.size());
  std::vector<Scratch> scratch(pool.size());
  Progress progress("retention", jobs.size(), 0, o.show_progress);
  pool.parallel_for(jobs.size(), 1, [&](size_t b, size_t e, size_t worker) {
    for (size_t j = b; j < e; ++j) {
      job_sums[j].assign(o.bits.size(), {});
      run_job(jobs[j], tensors[jobs[j].tensor], rows, quantized ? &*quantized : nullptr, scratch[worker], job_sums[j]);
      progress.advance(1, 0);
    }
  });
  progress.finish();

  WeightRetention r;
  r.bits = o.bits;
  r.group_size = o.group_size;
  r.source = from_adapter ? "adapter" : "fused";
  std::vector<TensorRetention> per_tensor(tensors.size());
  for (size_t j = 0; j < jobs.size(); ++j) {  // in job order: independent of the thread count
    TensorRetention& t = per_tensor[jobs[j].tensor];
    t.sums.resize(o.bits.size());
    for (size_t w = 0; w < o.bits.size(); ++w) t.sums[w].add(job_sums[j][w]);
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    TensorRetention& t = per_tensor[i];
    if (t.sums.empty() || t.sums.front().changed == 0) continue;
    t.name = tensors[i].tensor->name;
    t.layer = layer_of(t.name);
    t.numel = tensors[i].tensor->numel();
    for (const auto& q : tensors[i].quant) t.bits.push_back(q.bits);
    r.tensors.push_back(std::move(t));
  }
  aggregate(r);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

std::vector<LayerLoss> layers_lost_first(const WeightRetention& r, double threshold) {
  std::vector<LayerLoss> out;
  if (r.bits.empty()) return out;
  const size_t lowest = std::min_element(r.bits.begin(), r.bits.end()) - r.bits.begin();
  for (const auto& l : r.layers) {
    LayerLoss loss{l.layer, 0, l.sums[lowest].cosine()};
    for (size_t w = 0; w < r.bits.size(); ++w)
      if (l.sums[w].cosine() < threshold) loss.loss_bits = std::max(loss.loss_bits, r.bits[w]);
    out.push_back(loss);
  }
  std::stable_sort(out.begin(), out.end(), [](const LayerLoss& a, const LayerLoss& b) {
    if (a.loss_bits != b.loss_bits) return a.loss_bits > b.loss_bits;
    return a.cosine_at_lowest < b.cosine_at_lowest;
  });
  return out;
}

}  // namespace quantlab::analysis
