#include "analysis/fused_rows.h"

#include <cstring>
#include <regex>

#include "core/error.h"
#include "kernels/kernels.h"
#include "quant/convert.h"
#include "quant/rounding.h"

namespace quantlab::analysis {

namespace {

// Where expert e of an adapter module lands in an HF-layout (or MLX stacked) float base:
// the tensor name and the first row. Mirrors `quantlab fuse`: modules named as in the base, mlx-lm's
// stacked switch_mlp modules on per-expert bases, and per-expert modules on stacked bases.
std::pair<std::string, int64_t> locate(const io::ModelWeights& base, const io::LoraModule& lm, int64_t e) {
  static const std::regex kSwitch(R"((.*\.mlp)\.switch_mlp\.(\w+))"), kExpert(R"((.*\.mlp)\.experts\.(\d+)\.(\w+))");
  const int64_t rows = lm.embedding ? lm.in : lm.out;
  if (base.contains(lm.module + ".weight")) return {lm.module + ".weight", lm.experts > 0 ? e * rows : 0};
  std::smatch m;
  if (std::regex_match(lm.module, m, kSwitch)) {
    const std::string per_expert = m[1].str() + ".experts." + std::to_string(e) + "." + m[2].str() + ".weight";
    if (base.contains(per_expert)) return {per_expert, 0};
  }
  if (std::regex_match(lm.module, m, kExpert)) {
    const std::string stacked = m[1].str() + ".switch_mlp." + m[3].str() + ".weight";
    if (base.contains(stacked)) return {stacked, std::stoll(m[2].str()) * rows};
  }
  fail_input("adapter module '{}' has no matching weight in the base {} (looked for '{}.weight')", lm.module,
             base.dir(), lm.module);
}

}  // namespace

FusedRows FusedRows::from_adapter(const io::ModelWeights& base, io::Adapter adapter) {
  FusedRows f(base, nullptr);
  f.adapter_ = std::move(adapter);
  f.resolve_adapter();
  return f;
}

FusedRows FusedRows::from_fused(const io::ModelWeights& base, const io::ModelWeights& fused) {
  for (const auto& name : base.names()) {
    const auto& b = *base.at(name).info;
    if (!is_float(b.dtype)) continue;
    const auto* f = fused.find(name);
    if (!f) fail_input("{}: tensor '{}' of the base {} is missing (is it the fine-tune of that base?)", fused.dir(), name, base.dir());
    if (f->info->shape != b.shape)
      fail_input("{}: tensor '{}' has shape {} but the base's is {}", fused.dir(), name, f->info->shape_string(),
                 b.shape_string());
    if (!is_float(f->info->dtype))
      fail_input("{}: tensor '{}' is {}, not a float tensor; retention compares float checkpoints (run `quantlab "
                 "dequantize` first)", fused.dir(), name, dtype_name(f->info->dtype));
  }
  return FusedRows(base, &fused);
}

void FusedRows::resolve_adapter() {
  const auto& modules = adapter_->modules;
  for (size_t i = 0; i < modules.size(); ++i) {
    const io::LoraModule& lm = modules[i];
    const int64_t rows = lm.embedding ? lm.in : lm.out, cols = lm.embedding ? lm.out : lm.in;
    for (int64_t e = 0; e < std::max<int64_t>(lm.experts, 1); ++e) {
      const auto [name, offset] = locate(*base_, lm, e);
      const auto& info = *base_->at(name).info;
      const int64_t base_cols = info.shape.empty() ? 1 : info.shape.back();
      const int64_t base_rows = info.numel() / std::max<int64_t>(base_cols, 1);
      if (!is_float(info.dtype))
        fail_input("tensor '{}' of {} is {}: retention needs a float base (run `quantlab dequantize` first)", name,
                   base_->dir(), dtype_name(info.dtype));
      if (cols != base_cols || offset + rows > base_rows)
        fail_input("adapter module '{}' expects a base weight of {} rows x {} columns, but '{}' has {} x {} (wrong "
                   "base model?)", lm.module, rows, cols, name, base_rows, base_cols);
      edits_[name].push_back({i, e, offset, rows});
    }
  }
}

bool FusedRows::may_differ(const std::string& source) const { return fused_ || edits_.count(source) > 0; }

void FusedRows::read_f32(const io::ModelWeights& w, const std::string& name, int64_t first, int64_t n,
                         std::vector<float>& out) const {
  const auto& e = w.at(name);
  const size_t elem = dtype_size(e.info->dtype);
  std::vector<uint8_t> raw(static_cast<size_t>(n) * elem);
  e.file->read(*e.info, static_cast<uint64_t>(first) * elem, raw.size(), raw.data());
  out.resize(static_cast<size_t>(n));
  kernels::convert_to_f32(e.info->dtype, raw.data(), out.size(), out.data());
}

bool FusedRows::read(const std::string& name, int64_t r0, int64_t r1, int64_t cols, std::vector<float>& base,
                     std::vector<float>& fused) const {
  const int64_t n = (r1 - r0) * cols;
  read_f32(*base_, name, r0 * cols, n, base);
  if (fused_) {
    read_f32(*fused_, name, r0 * cols, n, fused);
    return std::memcmp(base.data(), fused.data(), base.size() * sizeof(float)) != 0;
  }
  if (!adapter_delta(name, r0, r1, cols, fused)) return false;
  for (size_t i = 0; i < fused.size(); ++i) fused[i] += base[i];
  // As `quantlab fuse` writes it: one rounding of W + delta to the base's dtype.
  quant::round_to_dtype(fused.data(), fused.size(), base_->at(name).info->dtype);
  return true;
}

bool FusedRows::adapter_delta(const std::string& name, int64_t r0, int64_t r1, int64_t cols,
                              std::vector<float>& out) const {
  QL_CHECK(adapter_.has_value(), "the change of '{}' asked of rows without an adapter", name);
  out.assign(static_cast<size_t>((r1 - r0) * cols), 0.0f);
  auto it = edits_.find(name);
  if (it == edits_.end()) return false;
  std::vector<float> delta(static_cast<size_t>(cols));
  bool any = false;
  for (const Edit& edit : it->second) {
    const io::LoraModule& lm = adapter_->modules[edit.module];
    const int64_t first = std::max(r0, edit.row_offset), last = std::min(r1, edit.row_offset + edit.rows);
    for (int64_t r = first; r < last; ++r) {
      lm.delta_row(edit.expert, r - edit.row_offset, delta.data());
      float* row = out.data() + (r - r0) * cols;
      for (int64_t c = 0; c < cols; ++c) row[c] += delta[c];
      any = true;
    }
  }
  return any;
}

void set_delta_source(quant::RoundingOptions& rounding, const std::string& model_dir, const std::string& base_dir,
                      const std::string& adapter_dir) {
  rounding.base_dir = base_dir;
  if (adapter_dir.empty()) return;
  rounding.delta_gram = adapter_delta_gram(model_dir, adapter_dir);
  rounding.adapter_dir = adapter_dir;
}

std::function<std::vector<double>(const std::string&, int64_t)> adapter_delta_gram(const std::string& model_dir,
                                                                                  const std::string& adapter_dir) {
  struct State {
    io::ModelWeights weights;
    std::optional<FusedRows> rows;
  };
  auto state = std::make_shared<State>(State{io::ModelWeights::open(model_dir), std::nullopt});
  // The fused model has the base's names and shapes: it resolves the adapter's modules as the base would.
  state->rows.emplace(FusedRows::from_adapter(state->weights, io::load_adapter(adapter_dir)));
  return [state](const std::string& source, int64_t cols) {
    return quant::gram_by_row_chunks(state->weights.at(source).info->numel() / cols, cols,
                                     [&](int64_t first, int64_t last, std::vector<float>& delta) {
                                       return state->rows->adapter_delta(source, first, last, cols, delta);
                                     });
  };
}

}  // namespace quantlab::analysis
