#include "io/adapter.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"
#include "core/half.h"
#include "core/mapped_file.h"
#include "io/safetensors.h"

namespace quantlab::io {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json read_json(const std::string& path) {
  try {
    return json::parse(read_text_file(path));
  } catch (const json::exception& e) {  // bad syntax, and numbers beyond a double (406)
    fail_input("{}: not valid JSON: {}", path, e.what());
  }
}

std::vector<float> tensor_f32(const ModelWeights& w, const std::string& name) {
  const auto& e = w.at(name);
  const auto bytes = w.bytes(e);
  std::vector<float> out(static_cast<size_t>(e.info->numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    uint16_t h;
    switch (e.info->dtype) {
      case DType::kF32: std::memcpy(&out[i], bytes.data() + 4 * i, 4); break;
      case DType::kF16: std::memcpy(&h, bytes.data() + 2 * i, 2); out[i] = f16_to_f32(h); break;
      case DType::kBF16: std::memcpy(&h, bytes.data() + 2 * i, 2); out[i] = bf16_to_f32(h); break;
      default: fail_input("{}: tensor '{}' must be a float tensor, found {}", w.dir(), name, dtype_name(e.info->dtype));
    }
  }
  return out;
}

// Transposes the last two dims of [batch][rows][cols].
std::vector<float> transpose_last2(const std::vector<float>& v, int64_t batch, int64_t rows, int64_t cols) {
  std::vector<float> t(v.size());
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) t[(b * cols + c) * rows + r] = v[(b * rows + r) * cols + c];
  return t;
}

// PEFT rank_pattern / alpha_pattern keys match a module name that equals the key or ends with ".key".
template <typename T>
T pattern_value(const json& patterns, const std::string& module, T fallback) {
  if (!patterns.is_object()) return fallback;
  for (auto it = patterns.begin(); it != patterns.end(); ++it) {
    try {
      if (std::regex_match(module, std::regex("(.*\\.)?" + it.key())) && it->is_number()) return it->get<T>();
    } catch (const std::regex_error&) {
      if (module == it.key()) return it->get<T>();
    }
  }
  return fallback;
}

Adapter load_peft(const std::string& dir, const json& cfg, const std::string& cfg_path) {
  if (cfg.value("peft_type", "LORA") != "LORA")
    fail(ErrorKind::kUnsupported, "{}: peft_type '{}' is not supported (LORA only)", cfg_path, cfg.value("peft_type", ""));
  if (cfg.value("use_dora", false))
    fail(ErrorKind::kUnsupported, "{}: DoRA adapters (use_dora) are not supported yet", cfg_path);
  if (!cfg.contains("r") || !cfg["r"].is_number_integer() || cfg["r"].get<int64_t>() <= 0)
    fail_input("{}: 'r' must be a positive integer", cfg_path);
  const int64_t r_default = cfg["r"].get<int64_t>();
  const double alpha_default = cfg.value("lora_alpha", static_cast<double>(r_default));
  const bool rslora = cfg.value("use_rslora", false);
  if (cfg.value("fan_in_fan_out", false))
    fail(ErrorKind::kUnsupported, "{}: fan_in_fan_out adapters (GPT-2 Conv1D weights) are not supported", cfg_path);
  const std::string file = (fs::path(dir) / "adapter_model.safetensors").string();
  if (!fs::exists(file)) fail_input("{}: missing adapter_model.safetensors", dir);
  const ModelWeights w = ModelWeights::open_file(file);
  static const std::regex kKey(R"(base_model\.model\.(.*)\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B)(\.weight)?)");
  std::map<std::string, std::map<std::string, std::string>> parts;  // module -> kind -> tensor
  for (const auto& name : w.names()) {
    std::smatch m;
    if (!std::regex_match(name, m, kKey))
      fail(ErrorKind::kUnsupported, "{}: tensor '{}' is not a LoRA A/B matrix (modules_to_save and biases are not supported)", file, name);
    parts[m[1].str()][m[2].str()] = name;
  }
  Adapter adapter{dir, "peft", {}};
  for (const auto& [module, kinds] : parts) {
    LoraModule lm;
    lm.module = module;
    lm.embedding = kinds.count("lora_embedding_A") > 0;
    const std::string a_name = kinds.count(lm.embedding ? "lora_embedding_A" : "lora_A") ? kinds.at(lm.embedding ? "lora_embedding_A" : "lora_A") : "";
    const std::string b_name = kinds.count(lm.embedding ? "lora_embedding_B" : "lora_B") ? kinds.at(lm.embedding ? "lora_embedding_B" : "lora_B") : "";
    if (a_name.empty() || b_name.empty()) fail_input("{}: module '{}' needs both LoRA A and B", file, module);
    const auto& as = w.at(a_name).info->shape;
    const auto& bs = w.at(b_name).info->shape;
    if (as.size() != 2 || bs.size() != 2 || as[0] != bs[1])
      fail_input("{}: module '{}': A {} and B {} do not share a rank", file, module, w.at(a_name).info->shape_string(),
                 w.at(b_name).info->shape_string());
    lm.rank = as[0];
    const int64_t r_expected = pattern_value<int64_t>(cfg.value("rank_pattern", json::object()), module, r_default);
    if (lm.rank != r_expected)
      fail_input("{}: module '{}' has rank {} but adapter_config.json says r = {}", file, module, lm.rank, r_expected);
    const double alpha = pattern_value<double>(cfg.value("alpha_pattern", json::object()), module, alpha_default);
    lm.scale = static_cast<float>(rslora ? alpha / std::sqrt(static_cast<double>(lm.rank)) : alpha / lm.rank);
    lm.in = as[1];
    lm.out = bs[0];
    lm.a = tensor_f32(w, a_name);
    lm.b = tensor_f32(w, b_name);
    adapter.modules.push_back(std::move(lm));
  }
  return adapter;
}

Adapter load_mlx(const std::string& dir, const json& cfg, const std::string& cfg_path) {
  const std::string type = cfg.value("fine_tune_type", "lora");
  if (type != "lora")
    fail(ErrorKind::kUnsupported, "{}: fine_tune_type '{}' is not supported (lora only)", cfg_path, type);
  const json params = cfg.value("lora_parameters", json::object());
  const float scale = params.value("scale", 20.0f);
  const std::string file = (fs::path(dir) / "adapters.safetensors").string();
  if (!fs::exists(file)) fail_input("{}: missing adapters.safetensors", dir);
  const ModelWeights w = ModelWeights::open_file(file);
  std::map<std::string, std::pair<std::string, std::string>> parts;
  for (const auto& name : w.names()) {
    const auto dot = name.rfind('.');
    const std::string leaf = dot == std::string::npos ? name : name.substr(dot + 1);
    if (leaf == "m") fail(ErrorKind::kUnsupported, "{}: DoRA magnitude '{}' found; DoRA is not supported yet", file, name);
    if (leaf != "lora_a" && leaf != "lora_b")
      fail(ErrorKind::kUnsupported, "{}: tensor '{}' is not lora_a/lora_b (full fine-tunes are not adapters)", file, name);
    auto& p = parts[name.substr(0, dot)];
    (leaf == "lora_a" ? p.first : p.second) = name;
  }
  Adapter adapter{dir, "mlx", {}};
  for (const auto& [module, names] : parts) {
    if (names.first.empty() || names.second.empty()) fail_input("{}: module '{}' needs both lora_a and lora_b", file, module);
    const auto& as = w.at(names.first).info->shape;
    const auto& bs = w.at(names.second).info->shape;
    LoraModule lm;
    lm.module = module;
    lm.scale = scale;
    if (as.size() == 3 && bs.size() == 3) {  // LoRASwitchLinear: a (E, r, in), b (E, out, r)
      if (as[0] != bs[0] || as[1] != bs[2])
        fail_input("{}: module '{}': lora_a {} and lora_b {} disagree", file, module, w.at(names.first).info->shape_string(),
                   w.at(names.second).info->shape_string());
      lm.experts = as[0];
      lm.rank = as[1];
      lm.in = as[2];
      lm.out = bs[1];
      lm.a = tensor_f32(w, names.first);
      lm.b = tensor_f32(w, names.second);
    } else if (as.size() == 2 && bs.size() == 2) {  // LoRALinear: a (in, r), b (r, out)
      if (as[1] != bs[0])
        fail_input("{}: module '{}': lora_a {} and lora_b {} do not share a rank", file, module,
                   w.at(names.first).info->shape_string(), w.at(names.second).info->shape_string());
      lm.rank = as[1];
      lm.in = as[0];
      lm.out = bs[1];
      lm.a = transpose_last2(tensor_f32(w, names.first), 1, lm.in, lm.rank);
      lm.b = transpose_last2(tensor_f32(w, names.second), 1, lm.rank, lm.out);
      lm.embedding = module.size() >= 12 && module.compare(module.size() - 12, 12, "embed_tokens") == 0;
      // (LoRAEmbedding: lora_a (vocab, r), lora_b (r, dims) gives the same canonical A (r, vocab),
      // B (dims, r), with in = vocab and out = dims.)
    } else {
      fail_input("{}: module '{}': unexpected lora_a {} / lora_b {} ranks", file, module, w.at(names.first).info->shape_string(),
                 w.at(names.second).info->shape_string());
    }
    if (params.contains("rank") && params["rank"].is_number_integer() && params["rank"].get<int64_t>() != lm.rank)
      fail_input("{}: module '{}' has rank {} but lora_parameters.rank is {}", file, module, lm.rank, params["rank"].get<int64_t>());
    adapter.modules.push_back(std::move(lm));
  }
  return adapter;
}

}  // namespace

void LoraModule::delta_row(int64_t e, int64_t row, float* out_row) const {
  const float* A = a.data() + e * rank * in;
  const float* B = b.data() + e * out * rank;
  if (embedding) {  // delta[v, d] = scale * sum_r A[r, v] * B[d, r], row = v, cols = out (dims)
    for (int64_t d = 0; d < out; ++d) {
      float s = 0;
      for (int64_t r = 0; r < rank; ++r) s += A[r * in + row] * B[d * rank + r];
      out_row[d] = scale * s;
    }
    return;
  }
  for (int64_t i = 0; i < in; ++i) out_row[i] = 0;
  for (int64_t r = 0; r < rank; ++r) {
    const float coef = scale * B[row * rank + r];
    const float* arow = A + r * in;
    for (int64_t i = 0; i < in; ++i) out_row[i] += coef * arow[i];
  }
}

std::vector<int64_t> LoraModule::base_shape() const {
  if (embedding) return {in, out};
  if (experts > 0) return {experts, out, in};
  return {out, in};
}

Adapter load_adapter(const std::string& dir) {
  const std::string cfg_path = (fs::path(dir) / "adapter_config.json").string();
  if (!fs::is_directory(dir)) fail(ErrorKind::kIo, "{}: not a directory", dir);
  if (!fs::exists(cfg_path)) fail_input("{}: missing adapter_config.json", dir);
  const json cfg = read_json(cfg_path);
  if (!cfg.is_object()) fail_input("{}: must be a JSON object", cfg_path);
  try {
    if (cfg.contains("peft_type") || fs::exists(fs::path(dir) / "adapter_model.safetensors")) return load_peft(dir, cfg, cfg_path);
    if (cfg.contains("lora_parameters") || fs::exists(fs::path(dir) / "adapters.safetensors")) return load_mlx(dir, cfg, cfg_path);
  } catch (const json::exception& e) {  // a field of the wrong type (e.g. "lora_alpha": "16")
    fail_input("{}: {}", cfg_path, e.what());
  }
  fail_input("{}: neither a PEFT adapter (peft_type, adapter_model.safetensors) nor an mlx-lm one "
             "(lora_parameters, adapters.safetensors)", dir);
}

}  // namespace quantlab::io
