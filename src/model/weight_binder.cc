#include "model/weight_binder.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "kernels/format.h"
#include "quant/quantized_layout.h"

namespace quantlab::model {

namespace {

std::string shape_string(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// Tensors that exporters leave behind and every reference loader skips.
bool is_ignorable(const std::string& name) {
  return name.ends_with(".rotary_emb.inv_freq");
}

}  // namespace

WeightBinder::WeightBinder(const io::ModelWeights& weights, const io::ModelConfig& config)
    : weights_(weights), config_(config) {}

std::string WeightBinder::where(const std::string& name) const {
  const auto* e = weights_.find(name);
  return e ? fmt::format("{}: tensor '{}'", e->file->path(), name) : fmt::format("{}: tensor '{}'", weights_.dir(), name);
}

const io::ModelWeights::Entry& WeightBinder::tensor(const std::string& name) {
  const auto* e = weights_.find(name);
  if (!e) fail_input("{}: missing tensor '{}' (required by {})", weights_.dir(), name, config_.path);
  used_.insert(name);
  return *e;
}

void WeightBinder::expect_shape(const io::ModelWeights::Entry& e, const std::vector<int64_t>& shape,
                                const std::string& why) const {
  if (e.info->shape == shape) return;
  fail_input("{} has shape {}, but {} implies {}{}", where(e.info->name), e.info->shape_string(),
             config_.path, shape_string(shape), why.empty() ? "" : " (" + why + ")");
}

kernels::MatrixView WeightBinder::float_matrix(const std::string& name, const std::vector<int64_t>& shape) {
  const auto& e = tensor(name);
  if (!is_float(e.info->dtype))
    fail_input("{} has dtype {}, expected F32, F16 or BF16 (is it quantized without a 'quantization' "
               "block in config.json?)", where(name), dtype_name(e.info->dtype));
  expect_shape(e, shape, "");
  kernels::MatrixView v;
  v.type = kernels::float_format(e.info->dtype)->type;
  v.cols = static_cast<size_t>(shape.back());
  v.rows = static_cast<size_t>(e.info->numel()) / v.cols;
  v.data = weights_.bytes(e).data();
  mapped_bytes_ += e.info->nbytes;
  return v;
}

kernels::MatrixView WeightBinder::quantized_matrix(const std::string& path, const io::ModuleQuant& q,
                                                   const std::vector<int64_t>& lead, int64_t out, int64_t in) {
  // Mark the three tensors used (and name a missing one the way every other tensor is named), then
  // run the one validation every reader of quantized files shares.
  const auto& w = tensor(path + ".weight");
  for (const char* suffix : {".scales", ".biases"}) tensor(path + suffix);
  const quant::QuantizedModule module = quant::check_quantized_module(weights_, path, q);
  std::vector<int64_t> logical = lead;
  logical.insert(logical.end(), {out, in});
  if (module.logical_shape != logical)
    fail_input("{} holds a [{}] matrix at {} bits, group size {}, but {} implies {}", where(w.info->name),
               fmt::join(module.logical_shape, ", "), q.bits, q.group_size, config_.path, shape_string(logical));
  const kernels::MatrixView view = quant::quantized_matrix_view(weights_, module);
  mapped_bytes_ += kernels::stored_bytes(view);
  return view;
}

kernels::MatrixView WeightBinder::matrix(const std::string& path, const std::vector<int64_t>& lead,
                                         int64_t out, int64_t in) {
  const bool has_scales = weights_.contains(path + ".scales");
  std::optional<io::ModuleQuant> q;
  if (config_.quantization) q = config_.quantization->resolve(path, has_scales);
  else if (has_scales)
    fail_input("{}: '{}.scales' exists but {} has no 'quantization' block, so its bits and group size "
               "are unknown", weights_.dir(), path, config_.path);
  if (q) return quantized_matrix(path, *q, lead, out, in);
  if (has_scales)
    fail_input("{}: '{}.scales' exists but {} marks '{}' as not quantized", weights_.dir(), path,
               config_.path, path);
  std::vector<int64_t> shape = lead;
  shape.insert(shape.end(), {out, in});
  return float_matrix(path + ".weight", shape);
}

Linear WeightBinder::linear(const std::string& path, int64_t out, int64_t in, bool with_bias) {
  Linear l;
  l.weight = matrix(path, {}, out, in);
  if (with_bias) l.bias = vector_f32(path + ".bias", out);
  return l;
}

std::vector<kernels::MatrixView> WeightBinder::stacked(const std::string& path, int64_t experts, int64_t out,
                                                       int64_t in) {
  const kernels::MatrixView all = matrix(path, {experts}, out, in);
  std::vector<kernels::MatrixView> views;
  views.reserve(static_cast<size_t>(experts));
  for (int64_t e = 0; e < experts; ++e)
    views.push_back(all.row_slice(static_cast<size_t>(e * out), static_cast<size_t>(out)));
  return views;
}

std::vector<float> WeightBinder::vector_f32(const std::string& name, int64_t n) {
  const auto& e = tensor(name);
  if (!is_float(e.info->dtype))
    fail_input("{} has dtype {}, expected a float type", where(name), dtype_name(e.info->dtype));
  expect_shape(e, {n}, "");
  std::vector<float> v(static_cast<size_t>(n));
  kernels::convert_to_f32(e.info->dtype, weights_.bytes(e).data(), v.size(), v.data());
  copied_bytes_ += v.size() * sizeof(float);
  return v;
}

void WeightBinder::check_all_used() const {
  for (const std::string& name : weights_.names()) {
    if (used_.count(name) || is_ignorable(name)) continue;
    fail_input("{} is not part of the {} model that {} describes ({} layers{}); the config and the "
               "weights disagree", where(name), io::architecture_name(config_.arch), config_.path,
               config_.num_hidden_layers,
               config_.is_moe() ? fmt::format(", {} experts", config_.num_experts) : std::string());
  }
}

}  // namespace quantlab::model
