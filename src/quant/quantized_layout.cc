#include "quant/quantized_layout.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "kernels/format.h"
#include "quant/plan.h"

namespace quantlab::quant {

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

QuantizedModule check_quantized_module(const io::ModelWeights& w, const std::string& module,
                                       const io::ModuleQuant& q) {
  const auto& weight = *w.at(module + ".weight").info;
  const auto* scales = w.find(module + ".scales");
  const auto* biases = w.find(module + ".biases");
  if (!scales || !biases)
    fail_input("{}: quantized module '{}' needs .weight, .scales and .biases", w.dir(), module);
  if (q.mode != "affine")
    fail(ErrorKind::kUnsupported, "module '{}': quantization mode '{}' is not supported (affine only)",
         module, q.mode);
  kernels::check_affine_settings(q.bits, q.group_size, fmt::format("module '{}'", module));
  if (weight.dtype != DType::kU32)
    fail_input("{}: tensor '{}.weight': quantized weights must be U32, found {}", w.dir(), module,
               dtype_name(weight.dtype));
  const auto& si = *scales->info;
  const auto& bi = *biases->info;
  if (!is_float(si.dtype) || si.dtype != bi.dtype || si.shape != bi.shape)
    fail_input("{}: module '{}': scales {} {} and biases {} {} must be the same float type and shape", w.dir(), module,
               dtype_name(si.dtype), si.shape_string(), dtype_name(bi.dtype), bi.shape_string());
  if (weight.shape.size() < 2 || si.shape.size() != weight.shape.size() ||
      !std::equal(weight.shape.begin(), weight.shape.end() - 1, si.shape.begin()) ||
      weight.shape.back() * 32 != si.shape.back() * q.group_size * q.bits)
    fail_input("{}: tensor '{}.weight' (packed {}) does not match '{}.scales' {} at {} bits, group size {} "
               "(config.json's setting for '{}')", w.dir(), module, weight.shape_string(), module,
               si.shape_string(), q.bits, q.group_size, module);
  QuantizedModule m;
  m.module = module;
  m.quant = q;
  m.logical_shape = weight.shape;
  m.logical_shape.back() = weight.shape.back() * 32 / q.bits;
  m.scale_dtype = si.dtype;
  return m;
}

kernels::MatrixView quantized_matrix_view(const io::ModelWeights& w, const QuantizedModule& m) {
  kernels::MatrixView v;
  v.type = kernels::WeightType::kAffine;
  v.cols = static_cast<size_t>(m.logical_shape.back());
  v.rows = static_cast<size_t>(w.at(m.module + ".weight").info->numel() * 32 / m.quant.bits / v.cols);
  v.data = w.bytes(m.module + ".weight").data();
  v.scales = w.bytes(m.module + ".scales").data();
  v.biases = w.bytes(m.module + ".biases").data();
  v.bits = m.quant.bits;
  v.group_size = m.quant.group_size;
  v.scale_type = m.scale_dtype;
  return v;
}

QuantizedLayout describe_quantized(const io::ModelConfig& config, const io::ModelWeights& weights) {
  QuantizedLayout layout;
  std::set<std::string> used;
  const io::QuantizationConfig qc = config.quantization.value_or(io::QuantizationConfig{});
  for (const auto& name : weights.names()) {
    if (!ends_with(name, ".weight")) continue;
    const std::string module = name.substr(0, name.size() - 7);
    const bool has_scales = weights.contains(module + ".scales");
    const auto q = config.quantization ? qc.resolve(module, has_scales) : std::nullopt;
    if (!q) {
      if (has_scales)
        fail_input("{}: '{}' has scales but config.json has no quantization for it", config.path, module);
      continue;
    }
    layout.modules.push_back(check_quantized_module(weights, module, *q));
    used.insert({module + ".weight", module + ".scales", module + ".biases"});
  }
  for (const auto& name : weights.names())
    if (!used.count(name)) layout.float_tensors.push_back(name);
  std::sort(layout.modules.begin(), layout.modules.end(),
            [](const auto& a, const auto& b) { return natural_less(a.module, b.module); });
  std::sort(layout.float_tensors.begin(), layout.float_tensors.end(), natural_less);
  return layout;
}

}  // namespace quantlab::quant
