#include "model/weight_binder.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "quant/affine_reference.h"

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
  v.type = e.info->dtype == DType::kF32 ? kernels::WeightType::kF32
         : e.info->dtype == DType::kF16 ? kernels::WeightType::kF16
                                         : kernels::WeightType::kBF16;
  v.cols = static_cast<size_t>(shape.back());
  v.rows = static_cast<size_t>(e.info->numel()) / v.cols;
  v.data = weights_.bytes(e).data();
  mapped_bytes_ += e.info->nbytes;
  return v;
}

kernels::MatrixView WeightBinder::quantized_matrix(const std::string& path, const io::ModuleQuant& q,
                                                   const std::vector<int64_t>& lead, int64_t out, int64_t in) {
  if (q.mode != "affine")
    fail(ErrorKind::kUnsupported, "{}: module '{}' uses quantization mode '{}'; only 'affine' is supported",
         config_.path, path, q.mode);
  if (!quant::is_supported_bits(q.bits) || !quant::is_supported_group_size(q.group_size))
    fail(ErrorKind::kUnsupported, "{}: module '{}' has bits {} / group_size {}; supported: bits 2-8, group "
         "size 32, 64 or 128", config_.path, path, q.bits, q.group_size);
  if (in % q.group_size != 0 || (in * q.bits) % 32 != 0)
    fail_input("{}: module '{}' has {} input features, not a multiple of group_size {}", config_.path, path,
               in, q.group_size);
  const auto& w = tensor(path + ".weight");
  const auto& s = tensor(path + ".scales");
  const auto& b = tensor(path + ".biases");
  if (w.info->dtype != DType::kU32)
    fail_input("{} has dtype {}, but config.json quantizes '{}' ({} bits), which needs U32 packed codes",
               where(w.info->name), dtype_name(w.info->dtype), path, q.bits);
  const std::string why = fmt::format("{} bits, group size {}", q.bits, q.group_size);
  std::vector<int64_t> packed = lead, groups = lead;
  packed.insert(packed.end(), {out, in * q.bits / 32});
  groups.insert(groups.end(), {out, in / q.group_size});
  expect_shape(w, packed, why);
  expect_shape(s, groups, why);
  expect_shape(b, groups, why);
  if (!is_float(s.info->dtype) || s.info->dtype != b.info->dtype)
    fail_input("{} and '{}' must share one float dtype, got {} and {}", where(s.info->name), b.info->name,
               dtype_name(s.info->dtype), dtype_name(b.info->dtype));
  kernels::MatrixView v;
  v.type = kernels::WeightType::kAffine;
  v.cols = static_cast<size_t>(in);
  v.rows = static_cast<size_t>(w.info->numel() / (in * q.bits / 32));
  v.data = weights_.bytes(w).data();
  v.bits = q.bits;
  v.group_size = q.group_size;
  v.scale_type = s.info->dtype;
  v.scales = weights_.bytes(s).data();
  v.biases = weights_.bytes(b).data();
  mapped_bytes_ += w.info->nbytes + s.info->nbytes + b.info->nbytes;
  return v;
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
