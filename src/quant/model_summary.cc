#include "quant/model_summary.h"

#include <filesystem>

#include <fmt/format.h>

#include "io/safetensors.h"
#include "quant/plan.h"
#include "quant/quantized_layout.h"

namespace quantlab::quant {

namespace fs = std::filesystem;

namespace {

uint64_t product(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

void add_quantized(ModelSummary& s, const io::ModelWeights& w, const QuantizedModule& m) {
  TensorSummary t;
  t.name = m.module + ".weight";
  t.storage = fmt::format("affine q{} g{} ({} scales)", m.quant.bits, m.quant.group_size, dtype_name(m.scale_dtype));
  t.shape = m.logical_shape;
  t.bits = m.quant.bits;
  t.group_size = m.quant.group_size;
  t.params = product(m.logical_shape);
  for (const char* part : {".weight", ".scales", ".biases"}) t.bytes += w.at(m.module + part).info->nbytes;
  s.quantized_params += t.params;
  s.tensors.push_back(std::move(t));
}

}  // namespace

ModelSummary summarize_model(const std::string& dir) {
  const io::ModelConfig config = io::load_model_config(dir);
  const io::ModelWeights weights = io::ModelWeights::open(dir);
  return summarize_model(dir, config, weights);
}

ModelSummary summarize_model(const std::string& dir, const io::ModelConfig& config, const io::ModelWeights& weights) {
  ModelSummary s;
  s.dir = dir;
  s.architecture = std::string(io::architecture_name(config.arch));
  s.architecture_class = config.architecture_class;
  s.quantized = config.quantization.has_value();
  if (s.quantized) s.global_quant = config.quantization->global;
  const QuantizedLayout layout = describe_quantized(config, weights);
  uint64_t quantized_bytes = 0;
  for (const auto& m : layout.modules) {
    add_quantized(s, weights, m);
    quantized_bytes += s.tensors.back().bytes;
  }
  for (const auto& name : layout.float_tensors) {
    const auto& info = *weights.at(name).info;
    s.tensors.push_back({name, std::string(dtype_name(info.dtype)), info.shape, 0, 0,
                         static_cast<uint64_t>(info.numel()), info.nbytes});
  }
  std::sort(s.tensors.begin(), s.tensors.end(),
            [](const auto& a, const auto& b) { return natural_less(a.name, b.name); });
  for (const auto& t : s.tensors) {
    s.params += t.params;
    s.tensor_bytes += t.bytes;
  }
  s.disk_bytes = weights.disk_bytes();
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) s.all_files_bytes += e.file_size();
  s.bits_per_weight = s.params ? 8.0 * s.tensor_bytes / s.params : 0;
  s.quantized_bits_per_weight = s.quantized_params ? 8.0 * quantized_bytes / s.quantized_params : 0;
  return s;
}

nlohmann::ordered_json ModelSummary::to_json() const {
  nlohmann::ordered_json j;
  j["dir"] = dir;
  j["architecture"] = architecture;
  j["architecture_class"] = architecture_class;
  j["quantized"] = quantized;
  if (global_quant) j["quantization"] = {{"bits", global_quant->bits}, {"group_size", global_quant->group_size}};
  j["parameters"] = params;
  j["quantized_parameters"] = quantized_params;
  j["tensor_bytes"] = tensor_bytes;
  j["weight_memory_bytes"] = tensor_bytes;
  j["disk_bytes"] = disk_bytes;
  j["all_files_bytes"] = all_files_bytes;
  j["bits_per_weight"] = bits_per_weight;
  j["quantized_bits_per_weight"] = quantized_bits_per_weight;
  auto& arr = j["tensors"] = nlohmann::ordered_json::array();
  for (const auto& t : tensors)
    arr.push_back({{"name", t.name}, {"storage", t.storage}, {"shape", t.shape}, {"bits", t.bits},
                   {"group_size", t.group_size}, {"params", t.params}, {"bytes", t.bytes}});
  return j;
}

}  // namespace quantlab::quant
