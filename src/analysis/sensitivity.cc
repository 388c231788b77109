#include "analysis/sensitivity.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "analysis/calibration.h"
#include "analysis/fused_rows.h"
#include "analysis/method_sensitivity.h"
#include "analysis/vocabulary_prior.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/progress.h"
#include "io/adapter.h"
#include "io/architecture.h"
#include "io/model_config.h"
#include "kernels/kernels.h"
#include "quant/convert.h"
#include "quant/plan.h"

namespace quantlab::analysis {

namespace {

using ojson = nlohmann::ordered_json;
constexpr const char* kSensitivityFormat = "quantlab.sensitivity/1";

using Setting = CandidateSetting;

// Where the rows come from: the fused checkpoint alone, or the base beside it (fused or adapter).
struct RowSource {
  const io::ModelWeights& fused;
  const FusedRows* pair = nullptr;  // with a base

  // Rows [r0, r0 + n) of `name` as f32: fused always, base when there is one.
  void read(const std::string& name, int64_t r0, int64_t n, int64_t cols, std::vector<float>& base,
            std::vector<float>& out) const {
    if (pair) {
      if (!pair->read(name, r0, r0 + n, cols, base, out)) out = base;
      return;
    }
    const auto& e = fused.at(name);
    const size_t elems = static_cast<size_t>(n * cols), size = dtype_size(e.info->dtype);
    out.resize(elems);
    kernels::convert_to_f32(e.info->dtype, fused.bytes(e).data() + static_cast<size_t>(r0 * cols) * size, elems,
                            out.data());
  }
};

// One row's contributions, one slot per candidate (summed in row order afterwards, so the result does
// not depend on how the rows were split between threads).
struct RowSums {
  double* output;
  double* finetune;
  double* delta;
};

// One row's errors for every candidate. w: the fused row (rounded to the storage dtype), d: the
// fine-tune's delta (empty without a base), m: E[x²] per column (f32), m64: the same in double.
void add_row(const std::vector<float>& w, const std::vector<float>& d, const float* m, const double* m64,
             const std::vector<Setting>& cands, DType dtype, RowSums sums) {
  double dd = 0;
  for (size_t j = 0; j < d.size(); ++j) dd += m64[j] * static_cast<double>(d[j]) * d[j];
  *sums.delta = dd;
  for (size_t c = 0; c < cands.size(); ++c) {
    double err = 0, along = 0;
    kernels::affine_rounding_error(w.data(), m, d.empty() ? nullptr : d.data(), w.size(), cands[c].bits,
                                   cands[c].group_size, dtype, &err, &along);
    sums.output[c] = err;
    sums.finetune[c] = dd > 0 ? along * along / dd : 0.0;
  }
}

// Each tensor is read once: its pages are dropped afterwards, so the resident part of the mapped
// files stays near one tensor's worth whatever the model size (quantize's streaming reads do the same).
void release_pages(const io::ModelWeights& weights, const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    const io::ModelWeights::Entry* e = weights.find(name);
    if (!e) continue;
    const std::span<const uint8_t> bytes = weights.bytes(*e);
    const MappedFile& file = e->file->mapped();
    file.advise_dontneed(static_cast<size_t>(bytes.data() - file.data()), bytes.size());
  }
}

const ModuleStats& stats_for(const CalibrationStats& stats, const quant::OutputTensor& t, const std::string& path) {
  const auto it = stats.modules.find(t.module);
  if (it == stats.modules.end())
    fail_input("{}: no statistics for module '{}' (recorded on another model, or a suite that never reached it?)",
               path, t.module);
  const size_t experts = t.sources.size() > 1 ? t.sources.size() : 1;
  if (it->second.cols != static_cast<size_t>(t.cols()) || it->second.experts != experts)
    fail_input("{}: statistics of '{}' have {} x {} channels, the model's module {} x {}", path, t.module,
               it->second.experts, it->second.cols, experts, t.cols());
  return it->second;
}

TensorSensitivity measure_tensor(const quant::OutputTensor& t, const std::vector<Setting>& cands, const ModuleStats& st,
                                 const RowSource& rows, bool has_base, ThreadPool& pool) {
  const int64_t cols = t.cols(), per_source = t.rows() / static_cast<int64_t>(t.sources.size());
  const size_t total = static_cast<size_t>(t.rows());
  const size_t n_cands = cands.size();
  std::vector<double> output(total * n_cands), finetune(total * n_cands), delta(total);
  const std::vector<float> m32(st.mean_x2.begin(), st.mean_x2.end());
  pool.parallel_for(total, 16, [&](size_t begin, size_t end, size_t) {
    std::vector<float> base, fused, d;
    for (size_t r = begin; r < end; ++r) {
      const size_t source = r / static_cast<size_t>(per_source);
      const int64_t row = static_cast<int64_t>(r) % per_source;
      rows.read(t.sources[source], row, 1, cols, base, fused);
      quant::round_to_dtype(fused.data(), fused.size(), t.float_dtype);
      d.clear();
      if (has_base) {
        d.resize(fused.size());
        for (size_t j = 0; j < fused.size(); ++j) d[j] = fused[j] - base[j];
      }
      const size_t expert = st.experts > 1 ? source : 0;
      add_row(fused, d, m32.data() + expert * st.cols, st.mean_x2.data() + expert * st.cols, cands, t.float_dtype,
              {output.data() + r * n_cands, finetune.data() + r * n_cands, delta.data() + r});
    }
  });
  TensorSensitivity out;
  out.module = t.module;
  out.shape = t.shape;
  out.parameters = static_cast<uint64_t>(t.numel());
  for (size_t r = 0; r < total; ++r) out.delta_energy += delta[r];
  for (size_t c = 0; c < n_cands; ++c) {
    Candidate cand{cands[c].bits, cands[c].group_size, 0, 0, 0, quant::RoundingMethod::kRtn};
    cand.bytes = kernels::affine_format(cand.bits)->stored_bytes(static_cast<uint64_t>(t.rows()),
                                                                 static_cast<uint64_t>(cols), cand.group_size,
                                                                 t.float_dtype);
    for (size_t r = 0; r < total; ++r) {
      cand.output_error += output[r * n_cands + c];
      cand.finetune_error += finetune[r * n_cands + c];
    }
    out.candidates.push_back(cand);
  }
  return out;
}

// Rows of a tensor's sources for measure_under_second_moments: fused rounded to the stored dtype, and
// the fine-tune's change beside it when there is a base.
SourceReader source_reader(const quant::OutputTensor& t, const RowSource& rows, bool has_base) {
  return [&t, &rows, has_base](size_t source, int64_t first, int64_t last, SourceRows& out) {
    std::vector<float> base;
    rows.read(t.sources[source], first, last - first, t.cols(), base, out.fused);
    quant::round_to_dtype(out.fused.data(), out.fused.size(), t.float_dtype);
    out.delta.clear();
    if (!has_base) return;
    out.delta.resize(out.fused.size());
    for (size_t j = 0; j < out.fused.size(); ++j) out.delta[j] = out.fused[j] - base[j];
  };
}

std::vector<Setting> candidates_for(const io::ModelConfig& config, const quant::OutputTensor& t,
                                    const SensitivityOptions& o) {
  if (io::is_router_module(config.arch, t.module)) {
    const io::ArchitectureInfo* f = io::find_architecture(config.arch);
    return {{f->router_bits, f->router_group_size}};
  }
  std::vector<Setting> out;
  for (int g : o.group_sizes)
    if (t.cols() % g == 0)
      for (int b : o.bits) out.push_back({b, g});
  return out;
}

void validate(const SensitivityOptions& o) {
  if (o.bits.empty() || o.group_sizes.empty()) fail(ErrorKind::kUsage, "--candidates and --group-size need values");
  for (int b : o.bits)
    if (!kernels::is_supported_bits(b))
      fail(ErrorKind::kUsage, "--candidates: {} is not a bit width ({})", b, kernels::supported_bits_text());
  for (int g : o.group_sizes)
    if (!kernels::is_supported_group_size(g))
      fail(ErrorKind::kUsage, "--group-size: {} is not supported ({})", g, kernels::supported_group_sizes_text());
  if (!o.adapter_dir.empty() && o.base_dir.empty()) fail(ErrorKind::kUsage, "--adapter needs --base");
  for (quant::RoundingMethod m : o.methods)
    if (m == quant::RoundingMethod::kDelta && o.base_dir.empty())
      fail(ErrorKind::kUsage, "--method delta needs --base BASE (the model the fine-tune started from)");
}

// The second moments of `stats` (read from `path`) moved into `r`; Error(kInvalidInput) naming the file
// when it has none.
void take_second_moments(CalibrationStats& stats, const std::string& path, quant::RoundingOptions& r) {
  if (!take_rounding_statistics(stats, r))
    fail_input("{}: no second moments in the statistics; --method gptq|delta measures every candidate under "
               "E[x xᵀ] (record it with `quantlab calibrate --second-moments`)", path);
}

// The rounding's statistics and settings for measuring calibrated methods (moved out of `stats`).
quant::RoundingOptions method_rounding(const SensitivityOptions& o, CalibrationStats& stats, ThreadPool& pool) {
  quant::RoundingOptions r;
  r.gptq = o.gptq;
  r.delta_weight = o.delta_weight;
  r.vocab_prior = o.vocab_prior;
  set_delta_source(r, o.fused_dir, o.base_dir, o.adapter_dir);
  take_second_moments(stats, o.stats_path, r);
  add_vocabulary_prior(r, o.fused_dir, pool);
  return r;
}

// The second moments of the held-out statistics, which every error is measured under.
quant::RoundingOptions held_out_moments(const SensitivityOptions& o, const io::ModelConfig& config) {
  if (!quant::any_calibrated(o.methods))
    fail(ErrorKind::kUsage, "--held-out-stats goes with --method gptq|delta (errors under E[x xᵀ])");
  CalibrationStats stats = read_stats(o.held_out_stats_path);
  check_stats_match(stats, config, o.held_out_stats_path);
  quant::RoundingOptions r;
  take_second_moments(stats, o.held_out_stats_path, r);
  return r;
}

}  // namespace

Sensitivity analyze_sensitivity(const SensitivityOptions& o, ThreadPool& pool) {
  validate(o);
  const io::ModelConfig config = io::load_model_config(o.fused_dir);
  const io::ModelWeights weights = io::ModelWeights::open(o.fused_dir);
  CalibrationStats stats = read_stats(o.stats_path);
  check_stats_match(stats, config, o.stats_path);
  const quant::QuantPlan plan = quant::make_quant_plan(config, quant::source_tensors(weights), {});
  std::optional<io::ModelWeights> base;
  std::optional<FusedRows> pair;
  if (!o.base_dir.empty()) {
    base = io::ModelWeights::open(o.base_dir);
    pair = o.adapter_dir.empty() ? FusedRows::from_fused(*base, weights)
                                 : FusedRows::from_adapter(*base, io::load_adapter(o.adapter_dir));
  }
  const RowSource rows{weights, pair ? &*pair : nullptr};
  Sensitivity out;
  out.model_dir = o.fused_dir;
  out.has_base = pair.has_value();
  out.second_moments = quant::any_calibrated(o.methods);
  const quant::RoundingOptions rounding = out.second_moments ? method_rounding(o, stats, pool) : quant::RoundingOptions{};
  out.held_out = !o.held_out_stats_path.empty();
  const quant::RoundingOptions held_out = out.held_out ? held_out_moments(o, config) : quant::RoundingOptions{};
  const quant::RoundingOptions& metric = out.held_out ? held_out : rounding;
  const std::string& metric_path = out.held_out ? o.held_out_stats_path : o.stats_path;
  const std::string embedding = io::model_spec(config, true).embedding.path;
  Progress progress("sensitivity", plan.tensors.size(), 0, o.show_progress);
  for (const auto& t : plan.tensors) {
    const bool matrix = !t.module.empty() && t.shape.size() >= 2 && is_float(t.source_dtype);
    const std::vector<Setting> cands = matrix ? candidates_for(config, t, o) : std::vector<Setting>{};
    if (cands.empty()) {  // stays float (or keeps its stored type): a fixed cost of any plan
      out.fixed_bytes += static_cast<uint64_t>(t.numel()) * dtype_size(t.float_dtype);
      out.fixed_parameters += static_cast<uint64_t>(t.numel());
    } else {
      // An untied embedding is a table lookup, not a Linear: calibration sees no input for it, and each
      // looked-up row reaches the residual stream as stored, so every column weighs the same (1).
      const bool lookup = t.module == embedding && !stats.modules.count(t.module);
      const bool pinned = cands.size() == 1 && io::is_router_module(config.arch, t.module);
      if (out.second_moments) {
        if (!lookup) stats_for(stats, t, o.stats_path);  // the shape checks
        // Routers keep their one setting, rounded to nearest (the allocation does not choose for them).
        const MethodContext ctx{weights, base ? &*base : nullptr, rounding, metric,
                                pinned ? std::vector<quant::RoundingMethod>{} : o.methods, metric_path};
        out.tensors.push_back(measure_under_second_moments(t, cands, ctx, source_reader(t, rows, out.has_base), lookup, pool));
      } else {
        const size_t cols = static_cast<size_t>(t.cols());
        const ModuleStats unit = lookup ? ModuleStats{1, cols, std::vector<double>(cols, 1.0), {double(stats.tokens)}, {}, {}}
                                        : ModuleStats{};
        out.tensors.push_back(measure_tensor(t, cands, lookup ? unit : stats_for(stats, t, o.stats_path), rows,
                                             out.has_base, pool));
      }
      release_pages(weights, t.sources);
      if (base) release_pages(*base, t.sources);
      out.tensors.back().pinned = pinned;
    }
    progress.advance(1, 0);
  }
  progress.finish();
  return out;
}

ojson sensitivity_json(const Sensitivity& s) {
  ojson tensors = ojson::array();
  for (const auto& t : s.tensors) {
    ojson cands = ojson::array();
    for (const auto& c : t.candidates) {
      cands.push_back({{"bits", c.bits}, {"group_size", c.group_size}, {"bytes", c.bytes},
                       {"output_error", c.output_error}, {"finetune_error", c.finetune_error}});
      if (c.method != quant::RoundingMethod::kRtn) cands.back()["method"] = quant::rounding_method_name(c.method);
    }
    tensors.push_back({{"module", t.module}, {"shape", t.shape}, {"parameters", t.parameters},
                       {"delta_energy", t.delta_energy}, {"pinned", t.pinned}, {"candidates", cands}});
    if (t.probe.bits)
      tensors.back()["probe"] = {{"bits", t.probe.bits}, {"group_size", t.probe.group_size}, {"kl", t.probe.kl},
                                 {"gain", t.probe.gain}};
  }
  return {{"format", kSensitivityFormat}, {"model", s.model_dir},    {"has_base", s.has_base}, {"has_gains", s.has_gains},
          {"error_metric", s.second_moments ? "second_moments" : "diagonal"}, {"held_out_errors", s.held_out},
          {"fixed_bytes", s.fixed_bytes},  {"fixed_parameters", s.fixed_parameters}, {"tensors", tensors}};
}

namespace {

template <typename T>
T field(const ojson& j, const char* key, const std::string& where) {
  if (!j.contains(key)) fail_input("{}: missing '{}'", where, key);
  try {
    return j[key].get<T>();
  } catch (const ojson::exception&) {
    fail_input("{}: '{}' has the wrong type ({})", where, key, j[key].dump());
  }
}

// A candidate's rounding method (absent: round-to-nearest, as files before methods were measured).
quant::RoundingMethod candidate_method(const ojson& c, const std::string& where) {
  if (!c.contains("method")) return quant::RoundingMethod::kRtn;
  const std::string name = field<std::string>(c, "method", where);
  if (const auto m = quant::find_rounding_method(name)) return *m;
  fail_input("{}: candidate 'method' must be rtn, gptq or delta, not \"{}\"", where, name);
}

}  // namespace

Sensitivity read_sensitivity(const std::string& path) {
  ojson j;
  try {
    j = ojson::parse(read_text_file(path));
  } catch (const ojson::exception& e) {  // bad syntax, and numbers beyond a double (406)
    fail_input("{}: not valid JSON: {}", path, e.what());
  }
  if (!j.is_object() || j.value("format", ojson()) != kSensitivityFormat)
    fail_input("{}: 'format' must be \"{}\" (written by `quantlab sensitivity`)", path, kSensitivityFormat);
  Sensitivity s;
  s.model_dir = field<std::string>(j, "model", path);
  s.has_base = field<bool>(j, "has_base", path);
  s.has_gains = j.contains("has_gains") && field<bool>(j, "has_gains", path);
  if (j.contains("error_metric")) {
    const std::string metric = field<std::string>(j, "error_metric", path);
    if (metric != "diagonal" && metric != "second_moments")
      fail_input("{}: 'error_metric' must be \"diagonal\" or \"second_moments\"", path);
    s.second_moments = metric == "second_moments";
  }
  s.held_out = j.contains("held_out_errors") && field<bool>(j, "held_out_errors", path);
  s.fixed_bytes = field<uint64_t>(j, "fixed_bytes", path);
  s.fixed_parameters = field<uint64_t>(j, "fixed_parameters", path);
  if (!j.contains("tensors") || !j["tensors"].is_array()) fail_input("{}: 'tensors' must be a list", path);
  for (size_t i = 0; i < j["tensors"].size(); ++i) {
    const ojson& t = j["tensors"][i];
    const std::string where = fmt::format("{}: tensors[{}]", path, i);
    TensorSensitivity ts;
    ts.module = field<std::string>(t, "module", where);
    ts.shape = field<std::vector<int64_t>>(t, "shape", where);
    ts.parameters = field<uint64_t>(t, "parameters", where);
    ts.delta_energy = field<double>(t, "delta_energy", where);
    ts.pinned = field<bool>(t, "pinned", where);
    if (!t.contains("candidates") || !t["candidates"].is_array() || t["candidates"].empty())
      fail_input("{}: 'candidates' must be a non-empty list", where);
    for (const ojson& c : t["candidates"])
      ts.candidates.push_back({field<int>(c, "bits", where), field<int>(c, "group_size", where),
                               field<uint64_t>(c, "bytes", where), field<double>(c, "output_error", where),
                               field<double>(c, "finetune_error", where), candidate_method(c, where)});
    if (t.contains("probe")) {
      const ojson& p = t["probe"];
      const std::string at = where + ".probe";
      ts.probe = {field<int>(p, "bits", at), field<int>(p, "group_size", at), field<double>(p, "kl", at),
                  field<double>(p, "gain", at)};
      if (!(ts.probe.gain >= 0)) fail_input("{}: 'gain' must be a number >= 0", at);
    } else if (s.has_gains && ts.candidates.size() > 1) {
      fail_input("{}: 'probe' missing although 'has_gains' is true", where);
    }
    s.tensors.push_back(std::move(ts));
  }
  return s;
}

}  // namespace quantlab::analysis
