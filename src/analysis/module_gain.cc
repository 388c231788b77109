#include "analysis/module_gain.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "analysis/affine_rows.h"
#include "core/error.h"
#include "core/progress.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "model/session.h"

namespace quantlab::analysis {

namespace {

DType float_dtype(kernels::WeightType t) {
  switch (t) {
    case kernels::WeightType::kF32: return DType::kF32;
    case kernels::WeightType::kF16: return DType::kF16;
    case kernels::WeightType::kBF16: return DType::kBF16;
    default: break;
  }
  fail_input("a probe needs float weights (the fused float checkpoint), not an already quantized module");
}

// One float matrix quantized to nearest as `quantize` writes it (codes, scales and biases rounded to the
// matrix's storage dtype, kept as f32 values, which the kernels read exactly).
struct QuantizedCopy {
  AffineRows rows;

  kernels::MatrixView quantize(const kernels::MatrixView& w, int bits, int group_size, ThreadPool& pool) {
    const DType dtype = float_dtype(w.type);
    std::vector<float> values(w.rows * w.cols);
    kernels::convert_to_f32(dtype, w.data, values.size(), values.data());
    rows = round_affine_rows(values.data(), w.rows, w.cols, bits, group_size, dtype, nullptr, pool);
    kernels::MatrixView q = rows.view();
    q.compute = w.compute;
    return q;
  }
};

// The candidate probed for a tensor: the lowest width >= the probe width at the first group size (the
// highest width when none is that large).
const Candidate& probe_candidate(const TensorSensitivity& t, int probe_bits) {
  const int group = t.candidates.front().group_size;
  const Candidate* best = nullptr;
  for (const Candidate& c : t.candidates) {
    // The probe quantizes to nearest, so its gain divides by round-to-nearest's error at that setting.
    if (c.group_size != group || c.method != quant::RoundingMethod::kRtn) continue;
    const bool wanted = c.bits >= probe_bits, best_wanted = best && best->bits >= probe_bits;
    if (!best || (wanted && (!best_wanted || c.bits < best->bits)) || (!wanted && !best_wanted && c.bits > best->bits))
      best = &c;
  }
  return *best;
}

}  // namespace

struct ModuleProbe::State {
  GainOptions options;
  ThreadPool& pool;
  model::Model probe;  // the fused model, whose modules are swapped one at a time
  std::vector<ReferenceQuery> queries;
};

namespace {

// The reference replies through the chat layer (prompts, stop rules), which is closed again before the
// probe model is loaded, so the files are mapped once at a time.
std::vector<ReferenceQuery> reference_queries(const GainOptions& o, ThreadPool& pool) {
  const std::unique_ptr<chat::ChatModel> fused = chat::ChatModel::open(o.fused_dir);
  std::vector<ReferenceQuery> queries = encode_suite(*fused, o.suite_path, o.tools_path, o.max_queries);
  record_reference(*fused, queries, o.max_tokens, 1, pool);
  return queries;
}

}  // namespace

ModuleProbe::ModuleProbe(const GainOptions& o, ThreadPool& pool) {
  std::vector<ReferenceQuery> queries = reference_queries(o, pool);
  state_.reset(new State{o, pool, model::Model::load(o.fused_dir), std::move(queries)});
}

ModuleProbe::~ModuleProbe() = default;

size_t ModuleProbe::queries() const { return state_->queries.size(); }

double ModuleProbe::kl_with(const std::string& module, int bits, int group_size) {
  State& s = *state_;
  const std::vector<kernels::MatrixView*> views = s.probe.module_views(module);
  if (views.empty()) fail_input("{}: the model has no module '{}' to probe", s.options.fused_dir, module);
  for (const kernels::MatrixView* v : views)
    if (v->cols % static_cast<size_t>(group_size) != 0)
      fail(ErrorKind::kUsage, "{}: {} columns are not a multiple of group size {}", module, v->cols, group_size);
  std::vector<kernels::MatrixView> original;
  for (const kernels::MatrixView* v : views) original.push_back(*v);
  // A tied embedding is one matrix seen twice (input and output head): quantized once.
  std::map<const void*, std::pair<QuantizedCopy, kernels::MatrixView>> copies;
  for (kernels::MatrixView* v : views) {
    auto [it, fresh] = copies.try_emplace(v->data);
    if (fresh) it->second.second = it->second.first.quantize(*v, bits, group_size, s.pool);
    *v = it->second.second;
  }
  double kl = 0;
  try {
    model::Session session(s.probe, s.pool, {context_needed(s.queries, s.options.max_tokens), 512});
    for (const ReferenceQuery& q : s.queries) kl += reply_kl(session, q, s.probe.dims().vocab, module).mean;
  } catch (...) {
    for (size_t i = 0; i < views.size(); ++i) *views[i] = original[i];
    throw;
  }
  for (size_t i = 0; i < views.size(); ++i) *views[i] = original[i];
  return kl / static_cast<double>(s.queries.size());
}

void measure_gains(const GainOptions& o, Sensitivity& s, ThreadPool& pool) {
  ModuleProbe probe(o, pool);
  size_t probed = 0;
  for (const auto& t : s.tensors) probed += t.candidates.size() > 1;
  Progress progress("module gains", probed, 0, o.show_progress);
  for (auto& t : s.tensors) {
    if (t.candidates.size() <= 1) continue;
    const Candidate& c = probe_candidate(t, o.probe_bits);
    t.probe.bits = c.bits;
    t.probe.group_size = c.group_size;
    t.probe.kl = probe.kl_with(t.module, c.bits, c.group_size);
    t.probe.gain = c.output_error > 0 ? t.probe.kl / c.output_error : 0.0;
    progress.advance(1, 0);
  }
  progress.finish();
  s.has_gains = true;
}

}  // namespace quantlab::analysis
