#include "quant/fuse.h"

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <regex>

#include "core/error.h"
#include "core/progress.h"
#include "io/adapter.h"
#include "io/model_config.h"
#include "io/output_dir.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "kernels/kernels.h"
#include "quant/convert.h"
#include "quant/quantized_layout.h"
#include "quant/quantizer.h"

namespace quantlab::quant {

namespace {

constexpr int64_t kJobElements = 1 << 18;

// One adapter module (one expert of it) applied to rows [row_offset, row_offset + rows) of a base tensor.
struct Edit {
  const io::LoraModule* lora;
  int64_t expert;
  int64_t row_offset;
  size_t report_index;
};

// A base tensor as the fuse sees it: float, or the weight of a quantized module.
struct Target {
  std::string name;                         // output tensor name (P.weight)
  const QuantizedModule* qmodule = nullptr;  // set for quantized modules
  int64_t rows = 0, cols = 0;
  std::vector<Edit> edits;
};

class TargetResolver {
 public:
  TargetResolver(const io::ModelWeights& w, const QuantizedLayout& layout) : w_(w) {
    for (const auto& m : layout.modules) qmodules_[m.module] = &m;
  }
  // Finds where (expert e of) the adapter module lands; fills tensor name and row offset.
  std::pair<std::string, int64_t> locate(const io::LoraModule& lm, int64_t e) const {
    static const std::regex kSwitch(R"((.*\.mlp)\.switch_mlp\.(\w+))"), kExpert(R"((.*\.mlp)\.experts\.(\d+)\.(\w+))");
    const int64_t rows = lm.embedding ? lm.in : lm.out;
    if (exists(lm.module)) return {lm.module, lm.experts > 0 ? e * rows : 0};
    std::smatch m;
    if (std::regex_match(lm.module, m, kSwitch)) {
      const std::string per_expert = m[1].str() + ".experts." + std::to_string(e) + "." + m[2].str();
      if (exists(per_expert)) return {per_expert, 0};
    }
    if (std::regex_match(lm.module, m, kExpert)) {
      const std::string stacked = m[1].str() + ".switch_mlp." + m[3].str();
      if (exists(stacked)) return {stacked, std::stoll(m[2].str()) * rows};
    }
    fail_input("adapter module '{}' has no matching weight in the base {} (looked for '{}.weight')", lm.module, w_.dir(),
               lm.module);
  }
  const QuantizedModule* quantized(const std::string& module) const {
    auto it = qmodules_.find(module);
    return it == qmodules_.end() ? nullptr : it->second;
  }

 private:
  bool exists(const std::string& module) const { return w_.contains(module + ".weight"); }
  const io::ModelWeights& w_;
  std::map<std::string, const QuantizedModule*> qmodules_;
};

std::map<std::string, Target> resolve_targets(const io::ModelWeights& w, const QuantizedLayout& layout,
                                              const io::Adapter& adapter, std::vector<FusedModuleReport>& reports) {
  TargetResolver resolver(w, layout);
  std::map<std::string, Target> targets;
  for (const auto& lm : adapter.modules) {
    reports.push_back({lm.module, 0, std::nullopt});
    for (int64_t e = 0; e < std::max<int64_t>(lm.experts, 1); ++e) {
      const auto [module, offset] = resolver.locate(lm, e);
      Target& t = targets[module];
      t.name = module + ".weight";
      t.qmodule = resolver.quantized(module);
      const auto& info = *w.at(t.name).info;
      t.cols = t.qmodule ? t.qmodule->logical_shape.back() : info.shape.back();
      t.rows = (t.qmodule ? info.numel() * 32 / t.qmodule->quant.bits : info.numel()) / t.cols;
      const int64_t rows = lm.embedding ? lm.in : lm.out, cols = lm.embedding ? lm.out : lm.in;
      if (cols != t.cols || offset + rows > t.rows)
        fail_input("adapter module '{}' expects a base weight of {} rows x {} columns, but '{}' has {} x {} (wrong base model?)",
                   lm.module, rows, cols, t.name, t.rows, t.cols);
      t.edits.push_back({&lm, e, offset, reports.size() - 1});
    }
  }
  return targets;
}

struct RowStats {
  double dot = 0, delta_sq = 0;
};

class Fuser {
 public:
  Fuser(const io::ModelWeights& w, io::SafetensorsWriter& writer, std::optional<DType> dtype)
      : w_(w), writer_(writer), dtype_(dtype) {}

  // Rows [r0, r1) of a targeted tensor; stats per edit report (indexed by report_index).
  void fuse_rows(const Target& t, int64_t r0, int64_t r1, std::vector<RowStats>& stats) const {
    std::vector<float> row(t.cols), delta(t.cols), fused((r1 - r0) * t.cols);
    const kernels::MatrixView view = t.qmodule ? quantized_matrix_view(w_, *t.qmodule) : kernels::MatrixView{};
    const DType wdtype = t.qmodule ? t.qmodule->scale_dtype : out_dtype(t.name);
    for (int64_t r = r0; r < r1; ++r) {
      float* out = fused.data() + (r - r0) * t.cols;
      if (t.qmodule) kernels::dequantize_row(view, static_cast<size_t>(r), out);
      else read_float_row(t.name, r, t.cols, out);
      const Edit* edit = find_edit(t, r);
      if (!edit) continue;
      edit->lora->delta_row(edit->expert, r - edit->row_offset, delta.data());
      RowStats& s = stats[edit->report_index];
      for (int64_t c = 0; c < t.cols; ++c) s.delta_sq += double(delta[c]) * delta[c];
      for (int64_t c = 0; c < t.cols; ++c) out[c] += delta[c];
    }
    round_to_dtype(fused.data(), fused.size(), wdtype);
    if (t.qmodule) write_requantized(t, r0, r1, fused, stats, view);
    else write_float(t.name, r0 * t.cols, fused);
  }

  void copy_rows(const std::string& name, int64_t r0, int64_t r1, int64_t cols) const {
    const auto& e = w_.at(name);
    const size_t in_elem = dtype_size(e.info->dtype);
    std::vector<uint8_t> raw(static_cast<size_t>((r1 - r0) * cols) * in_elem);
    e.file->read(*e.info, static_cast<uint64_t>(r0 * cols) * in_elem, raw.size(), raw.data());
    const DType out = out_dtype(name);
    if (out == e.info->dtype) {
      writer_.write_range(name, static_cast<uint64_t>(r0 * cols) * in_elem, raw);
      return;
    }
    std::vector<float> values(raw.size() / in_elem);
    load_as_f32_scalar(e.info->dtype, raw.data(), values.size(), values.data());
    write_float(name, r0 * cols, values);
  }

  DType out_dtype(const std::string& name) const {
    const DType d = w_.at(name).info->dtype;
    return is_float(d) && dtype_ ? *dtype_ : d;
  }

 private:
  static const Edit* find_edit(const Target& t, int64_t r) {
    for (const auto& e : t.edits) {
      const int64_t rows = e.lora->embedding ? e.lora->in : e.lora->out;
      if (r >= e.row_offset && r < e.row_offset + rows) return &e;
    }
    return nullptr;
  }

  void read_float_row(const std::string& name, int64_t r, int64_t cols, float* out) const {
    const auto& e = w_.at(name);
    const size_t elem = dtype_size(e.info->dtype);
    std::vector<uint8_t> raw(static_cast<size_t>(cols) * elem);
    e.file->read(*e.info, static_cast<uint64_t>(r * cols) * elem, raw.size(), raw.data());
    load_as_f32_scalar(e.info->dtype, raw.data(), static_cast<size_t>(cols), out);
    if (out_dtype(name) != e.info->dtype) round_to_dtype(out, static_cast<size_t>(cols), out_dtype(name));
  }

  void write_float(const std::string& name, int64_t first, const std::vector<float>& values) const {
    const DType d = out_dtype(name);
    std::vector<uint8_t> bytes(values.size() * dtype_size(d));
    store_as(values.data(), values.size(), d, bytes.data());
    writer_.write_range(name, static_cast<uint64_t>(first) * dtype_size(d), bytes);
  }

  void write_requantized(const Target& t, int64_t r0, int64_t r1, const std::vector<float>& fused,
                         std::vector<RowStats>& stats, const kernels::MatrixView& base) const {
    const auto& q = t.qmodule->quant;
    const int64_t rows = r1 - r0, wpr = t.cols * q.bits / 32, gpr = t.cols / q.group_size;
    std::vector<uint32_t> packed(rows * wpr);
    std::vector<float> scales(rows * gpr), biases(rows * gpr);
    kernels::affine_quantize(fused.data(), rows, t.cols, q.bits, q.group_size, packed.data(), scales.data(), biases.data());
    const DType sd = t.qmodule->scale_dtype;
    std::vector<uint8_t> sb(scales.size() * dtype_size(sd)), bb(sb.size());
    store_as(scales.data(), scales.size(), sd, sb.data());
    store_as(biases.data(), biases.size(), sd, bb.data());
    // Survival of the delta: compare the re-quantized rows (as stored) with the dequantized base rows.
    round_to_dtype(scales.data(), scales.size(), sd);
    round_to_dtype(biases.data(), biases.size(), sd);
    kernels::MatrixView fresh = base;
    fresh.rows = static_cast<size_t>(rows);
    fresh.data = packed.data();
    fresh.scales = scales.data();
    fresh.biases = biases.data();
    fresh.scale_type = DType::kF32;
    std::vector<float> now(t.cols), before(t.cols), delta(t.cols);
    for (int64_t r = r0; r < r1; ++r) {
      const Edit* e = find_edit(t, r);
      if (!e) continue;
      kernels::dequantize_row(fresh, static_cast<size_t>(r - r0), now.data());
      kernels::dequantize_row(base, static_cast<size_t>(r), before.data());
      e->lora->delta_row(e->expert, r - e->row_offset, delta.data());
      for (int64_t c = 0; c < t.cols; ++c) stats[e->report_index].dot += double(now[c] - before[c]) * delta[c];
    }
    const std::string& m = t.qmodule->module;
    writer_.write_range(m + ".weight", static_cast<uint64_t>(r0 * wpr) * 4,
                        {reinterpret_cast<const uint8_t*>(packed.data()), packed.size() * 4});
    writer_.write_range(m + ".scales", static_cast<uint64_t>(r0 * gpr) * dtype_size(sd), sb);
    writer_.write_range(m + ".biases", static_cast<uint64_t>(r0 * gpr) * dtype_size(sd), bb);
  }

  const io::ModelWeights& w_;
  io::SafetensorsWriter& writer_;
  std::optional<DType> dtype_;
};

struct FuseJob {
  std::string tensor;   // tensor name (untargeted copy) or target weight name
  const Target* target;  // null: copy
  int64_t r0, r1, cols;
};

}  // namespace

FuseReport fuse_adapter(const std::string& base_dir, const std::string& adapter_dir, const std::string& out_dir,
                        const FuseOptions& options, ThreadPool& pool) {
  const auto start = std::chrono::steady_clock::now();
  const io::ModelConfig config = io::load_model_config(base_dir);
  const io::ModelWeights w = io::ModelWeights::open(base_dir);
  const io::Adapter adapter = io::load_adapter(adapter_dir);
  FuseReport report;
  report.adapter_format = adapter.format;
  report.quantized_base = config.quantization.has_value();
  if (report.quantized_base && options.dtype)
    fail(ErrorKind::kUsage, "--dtype applies to float bases only; a quantized base keeps its scales' dtype");
  const QuantizedLayout layout = report.quantized_base ? describe_quantized(config, w) : QuantizedLayout{};
  const auto targets = resolve_targets(w, layout, adapter, report.modules);
  io::check_output_not_input(base_dir, out_dir);
  io::AtomicOutputDir out(out_dir, options.overwrite);
  std::vector<FuseJob> jobs;
  std::vector<io::TensorSpec> specs;
  std::map<std::string, const Target*> by_weight;
  for (const auto& [module, t] : targets) by_weight[t.name] = &t;
  uint64_t params = 0;
  for (const auto& name : w.names()) {
    const auto& info = *w.at(name).info;
    const DType d = is_float(info.dtype) && options.dtype ? *options.dtype : info.dtype;
    specs.push_back({name, d, info.shape});
    params += static_cast<uint64_t>(info.numel());
    auto it = by_weight.find(name);
    if (it != by_weight.end()) {
      for (const auto& r : split_rows(it->second->rows, it->second->cols, kJobElements))
        jobs.push_back({name, it->second, r.begin, r.end, it->second->cols});
      continue;
    }
    if (name.size() > 7 && (name.ends_with(".scales") || name.ends_with(".biases")) &&
        by_weight.count(name.substr(0, name.size() - 7) + ".weight"))
      continue;  // rewritten with their re-quantized weight
    const int64_t cols = info.shape.empty() ? 1 : info.shape.back();
    for (const auto& r : split_rows(info.numel() / std::max<int64_t>(cols, 1), cols, kJobElements))
      jobs.push_back({name, nullptr, r.begin, r.end, cols});
  }
  {
    io::SafetensorsWriter writer(out.temp_path(), specs, io::kDefaultMaxShardBytes, {{"format", report.quantized_base ? "mlx" : "pt"}});
    Fuser f(w, writer, options.dtype);
    std::vector<std::vector<RowStats>> job_stats(jobs.size());
    Progress progress("fuse", jobs.size(), 0, options.show_progress);
    pool.parallel_for(jobs.size(), 1, [&](size_t b, size_t e, size_t) {
      for (size_t j = b; j < e; ++j) {
        if (jobs[j].target) {
          job_stats[j].assign(report.modules.size(), {});
          f.fuse_rows(*jobs[j].target, jobs[j].r0, jobs[j].r1, job_stats[j]);
        } else {
          f.copy_rows(jobs[j].tensor, jobs[j].r0, jobs[j].r1, jobs[j].cols);
        }
        progress.advance(1, 0);
      }
    });
    progress.finish();
    writer.finish(params);
    // Reduce in job order: the report does not depend on the thread count.
    std::vector<RowStats> total(report.modules.size());
    for (const auto& js : job_stats)
      for (size_t i = 0; i < js.size(); ++i) {
        total[i].dot += js[i].dot;
        total[i].delta_sq += js[i].delta_sq;
      }
    double dot = 0, sq = 0;
    for (size_t i = 0; i < total.size(); ++i) {
      report.modules[i].delta_norm = std::sqrt(total[i].delta_sq);
      if (report.quantized_base && total[i].delta_sq > 0) report.modules[i].retained = total[i].dot / total[i].delta_sq;
      dot += total[i].dot;
      sq += total[i].delta_sq;
    }
    if (report.quantized_base && sq > 0) report.retained = dot / sq;
  }
  std::ofstream(out.file("config.json")) << io::config_for_output(config, options.dtype, config.quantization).dump(4) << "\n";
  copy_side_files(base_dir, out.temp_path());
  out.commit();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace quantlab::quant
