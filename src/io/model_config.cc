#include "io/model_config.h"

#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"
#include "io/safetensors.h"

namespace quantlab::io {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

// Typed field access with messages that name the file and key.
class Fields {
 public:
  Fields(const ojson& j, const std::string& path) : j_(j), path_(path) {}
  const ojson* get(std::initializer_list<const char*> keys) const {
    for (const char* k : keys) {
      auto it = j_.find(k);
      if (it != j_.end() && !it->is_null()) return &*it;
    }
    return nullptr;
  }
  int64_t integer(std::initializer_list<const char*> keys, std::optional<int64_t> def) const {
    const ojson* v = get(keys);
    if (!v) {
      if (def) return *def;
      fail_input("{}: missing required key '{}'", path_, *keys.begin());
    }
    if (!v->is_number_integer()) fail_input("{}: '{}' must be an integer, got {}", path_, *keys.begin(), v->dump());
    return v->get<int64_t>();
  }
  int64_t positive(std::initializer_list<const char*> keys, std::optional<int64_t> def) const {
    const int64_t v = integer(keys, def);
    if (v <= 0) fail_input("{}: '{}' must be positive, got {}", path_, *keys.begin(), v);
    return v;
  }
  double number(std::initializer_list<const char*> keys, double def) const {
    const ojson* v = get(keys);
    if (!v) return def;
    if (!v->is_number()) fail_input("{}: '{}' must be a number, got {}", path_, *keys.begin(), v->dump());
    return v->get<double>();
  }
  bool boolean(const char* key, bool def) const {
    const ojson* v = get({key});
    if (!v) return def;
    if (!v->is_boolean()) fail_input("{}: '{}' must be true or false, got {}", path_, key, v->dump());
    return v->get<bool>();
  }

 private:
  const ojson& j_;
  const std::string& path_;
};

ModuleQuant parse_module_quant(const ojson& j, const ModuleQuant& defaults, const std::string& path,
                               const std::string& where) {
  ModuleQuant q = defaults;
  if (j.contains("mode") && !j["mode"].is_null()) {
    if (!j["mode"].is_string()) fail_input("{}: {}: 'mode' must be a string", path, where);
    q.mode = j["mode"].get<std::string>();
  }
  for (const char* key : {"bits", "group_size"}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    if (!j[key].is_number_integer()) fail_input("{}: {}: '{}' must be an integer", path, where, key);
    (std::string(key) == "bits" ? q.bits : q.group_size) = j[key].get<int>();
  }
  return q;
}

QuantizationConfig parse_quantization(const ojson& j, const std::string& path) {
  if (!j.is_object()) fail_input("{}: 'quantization' must be an object", path);
  QuantizationConfig q;
  q.global = parse_module_quant(j, ModuleQuant{}, path, "quantization");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "bits" || it.key() == "group_size" || it.key() == "mode") continue;
    if (it->is_boolean()) {
      if (it->get<bool>()) q.per_module[it.key()] = q.global;
      else q.per_module[it.key()] = std::nullopt;
    } else if (it->is_object()) {
      // Missing keys take the mode's defaults (affine 64/4), not the global values (mlx-lm).
      q.per_module[it.key()] = parse_module_quant(*it, ModuleQuant{}, path, "quantization." + it.key());
    }
  }
  return q;
}

std::optional<RopeScaling> parse_rope_scaling(const ojson& j, const std::string& path) {
  const ojson* src = nullptr;
  if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) src = &j["rope_scaling"];
  else if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) src = &j["rope_parameters"];
  if (!src) return std::nullopt;
  RopeScaling r;
  for (const char* k : {"rope_type", "type"})
    if (src->contains(k) && (*src)[k].is_string()) { r.type = (*src)[k].get<std::string>(); break; }
  if (r.type == "default") return std::nullopt;
  Fields f(*src, path);
  r.factor = f.number({"factor"}, 1.0);
  r.low_freq_factor = f.number({"low_freq_factor"}, 1.0);
  r.high_freq_factor = f.number({"high_freq_factor"}, 4.0);
  r.original_max_position_embeddings = f.integer({"original_max_position_embeddings"}, 8192);
  return r;
}

void parse_architecture_fields(ModelConfig& c, const Fields& f) {
  c.vocab_size = f.positive({"vocab_size"}, std::nullopt);
  c.hidden_size = f.positive({"hidden_size"}, std::nullopt);
  c.num_hidden_layers = f.positive({"num_hidden_layers"}, std::nullopt);
  c.num_attention_heads = f.positive({"num_attention_heads"}, std::nullopt);
  c.num_key_value_heads = f.positive({"num_key_value_heads"}, c.num_attention_heads);
  c.head_dim = f.positive({"head_dim"}, c.hidden_size / c.num_attention_heads);
  c.intermediate_size = f.integer({"intermediate_size"}, 0);
  c.max_position_embeddings = f.integer({"max_position_embeddings"}, 2048);
  c.rms_norm_eps = f.number({"rms_norm_eps"}, 1e-6);
  const ojson* params = f.get({"rope_parameters"});
  c.rope_theta = f.number({"rope_theta"}, params && params->contains("rope_theta")
                                             ? (*params)["rope_theta"].get<double>() : 10000.0);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  c.attention_bias = f.boolean("attention_bias", false);
  c.mlp_bias = f.boolean("mlp_bias", false);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail_input("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", c.path,
               c.num_attention_heads, c.num_key_value_heads);
}

void parse_moe_fields(ModelConfig& c, const Fields& f, const ojson& j) {
  c.num_experts = f.positive({"num_experts", "num_local_experts"}, std::nullopt);
  c.num_experts_per_tok = f.positive({"num_experts_per_tok"}, std::nullopt);
  c.moe_intermediate_size = f.positive({"moe_intermediate_size"}, std::nullopt);
  c.decoder_sparse_step = f.positive({"decoder_sparse_step"}, 1);
  c.norm_topk_prob = f.boolean("norm_topk_prob", false);
  if (c.num_experts_per_tok > c.num_experts)
    fail_input("{}: num_experts_per_tok {} exceeds num_experts {}", c.path, c.num_experts_per_tok, c.num_experts);
  if (const ojson* m = f.get({"mlp_only_layers"})) {
    if (!m->is_array()) fail_input("{}: 'mlp_only_layers' must be a list", c.path);
    for (const auto& v : *m) {
      if (!v.is_number_integer()) fail_input("{}: 'mlp_only_layers' must hold integers", c.path);
      c.mlp_only_layers.push_back(v.get<int64_t>());
    }
  }
  (void)j;
}

void parse_token_ids(ModelConfig& c, const ojson& j) {
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer())
    c.bos_token_id = j["bos_token_id"].get<int64_t>();
  if (!j.contains("eos_token_id")) return;
  const ojson& e = j["eos_token_id"];
  if (e.is_number_integer()) c.eos_token_ids.push_back(e.get<int64_t>());
  else if (e.is_array())
    for (const auto& v : e)
      if (v.is_number_integer()) c.eos_token_ids.push_back(v.get<int64_t>());
}

}  // namespace

std::optional<ModuleQuant> QuantizationConfig::resolve(const std::string& module_path,
                                                       bool has_scales) const {
  auto it = per_module.find(module_path);
  if (it != per_module.end()) return it->second;
  if (has_scales) return global;
  return std::nullopt;
}

ojson QuantizationConfig::to_json() const {
  ojson j;
  j["group_size"] = global.group_size;
  j["bits"] = global.bits;
  j["mode"] = global.mode;
  for (const auto& [path, q] : per_module) {
    if (q) j[path] = {{"group_size", q->group_size}, {"bits", q->bits}, {"mode", q->mode}};
    else j[path] = false;
  }
  return j;
}

bool ModelConfig::is_moe_layer(int64_t layer) const {
  if (!is_moe()) return false;
  for (int64_t l : mlp_only_layers)
    if (l == layer) return false;
  return (layer + 1) % decoder_sparse_step == 0;
}

ModelConfig parse_model_config(const ojson& j, const std::string& path) {
  if (!j.is_object()) fail_input("{}: config must be a JSON object", path);
  ModelConfig c;
  c.path = path;
  c.raw = j;
  if (j.contains("model_type") && j["model_type"].is_string()) c.model_type = j["model_type"].get<std::string>();
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    c.architecture_class = j["architectures"][0].get<std::string>();
  c.arch = detect_architecture(c.model_type, c.architecture_class);
  Fields f(j, path);
  if (c.arch != Architecture::kUnknown) {
    parse_architecture_fields(c, f);
    c.rope_scaling = parse_rope_scaling(j, path);
    if (find_architecture(c.arch)->moe) parse_moe_fields(c, f, j);
  } else {
    c.vocab_size = f.integer({"vocab_size"}, 0);
    c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  }
  for (const char* k : {"torch_dtype", "dtype"}) {
    if (j.contains(k) && j[k].is_string()) {
      c.dtype = parse_float_dtype_config_name(j[k].get<std::string>());
      if (c.dtype) break;
    }
  }
  parse_token_ids(c, j);
  if (j.contains("quantization") && !j["quantization"].is_null())
    c.quantization = parse_quantization(j["quantization"], path);
  else if (j.contains("quantization_config") && j["quantization_config"].is_object() &&
           j["quantization_config"].contains("bits"))
    c.quantization = parse_quantization(j["quantization_config"], path);
  return c;
}

ModelConfig load_model_config(const std::string& dir) {
  count_config_read();
  const std::string path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(path)) fail_input("{}: missing config.json", dir);
  ojson j;
  try {
    j = ojson::parse(read_text_file(path));
  } catch (const ojson::exception& e) {  // bad syntax, and numbers beyond a double (406)
    fail_input("{}: not valid JSON: {}", path, e.what());
  }
  try {
    return parse_model_config(j, path);
  } catch (const ojson::exception& e) {  // a field of the wrong type that no check named
    fail_input("{}: {}", path, e.what());
  }
}

ojson config_for_output(const ModelConfig& config, std::optional<DType> dtype,
                        const std::optional<QuantizationConfig>& quantization) {
  ojson j = config.raw;
  if (config.arch != Architecture::kUnknown && !j.contains("rope_theta")) j["rope_theta"] = config.rope_theta;
  const bool moe_family = config.arch != Architecture::kUnknown && find_architecture(config.arch)->moe;
  if (moe_family && !j.contains("num_experts")) j["num_experts"] = config.num_experts;
  if (config.arch != Architecture::kUnknown && !j.contains("tie_word_embeddings"))
    j["tie_word_embeddings"] = config.tie_word_embeddings;
  if (dtype) {
    j["torch_dtype"] = float_dtype_config_name(*dtype);
    if (j.contains("dtype")) j["dtype"] = float_dtype_config_name(*dtype);
  }
  j.erase("quantization");
  j.erase("quantization_config");
  if (quantization) {
    j["quantization"] = quantization->to_json();
    j["quantization_config"] = quantization->to_json();
  }
  return j;
}

}  // namespace quantlab::io
