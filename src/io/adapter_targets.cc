#include "io/adapter_targets.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <regex>

#include "core/error.h"
#include "core/mapped_file.h"

namespace quantlab::io {

namespace {

using nlohmann::json;

// "model.layers.12.mlp.switch_mlp.gate_proj" -> 12 and the per-expert spelling PEFT matches against.
std::optional<int64_t> layer_of(const std::string& module) {
  static const std::regex kLayer(R"(model\.layers\.(\d+)\..*)");
  std::smatch m;
  if (!std::regex_match(module, m, kLayer)) return std::nullopt;
  return std::stoll(m[1]);
}

std::string per_expert_spelling(const std::string& module) {
  const size_t at = module.find(".switch_mlp.");
  return at == std::string::npos ? module : module.substr(0, at) + ".experts.0." + module.substr(at + 12);
}

bool suffix_match(const std::string& name, const std::string& key) {
  return name == key || (name.size() > key.size() && name.compare(name.size() - key.size(), key.size(), key) == 0 &&
                         name[name.size() - key.size() - 1] == '.');
}

std::vector<std::string> string_list(const json& j, const std::string& where) {
  std::vector<std::string> out;
  if (!j.is_array()) fail_input("{} must be a list of module names", where);
  for (const json& k : j) {
    if (!k.is_string()) fail_input("{} must be a list of module names, found {}", where, k.dump());
    out.push_back(k.get<std::string>());
  }
  return out;
}

void read_peft(const json& cfg, const std::string& path, AdapterTargets& t) {
  const json& tm = cfg["target_modules"];
  if (tm.is_string()) {
    t.regex = tm.get<std::string>();
    try {
      std::regex check(*t.regex);
    } catch (const std::regex_error&) {
      fail_input("{}: 'target_modules' is not a valid regex: {}", path, *t.regex);
    }
  } else {
    t.keys = string_list(tm, path + ": 'target_modules'");
    if (t.keys.empty()) fail_input("{}: 'target_modules' is empty", path);
  }
  const json& layers = cfg.value("layers_to_transform", json());
  if (layers.is_number_integer()) t.layers = {layers.get<int64_t>()};
  else if (layers.is_array())
    for (const json& l : layers) {
      if (!l.is_number_integer()) fail_input("{}: 'layers_to_transform' must hold layer numbers", path);
      t.layers.push_back(l.get<int64_t>());
    }
  else if (!layers.is_null()) fail_input("{}: 'layers_to_transform' must be a layer number or a list", path);
}

void read_mlx_lm(const json& cfg, const std::string& path, AdapterTargets& t) {
  const json& params = cfg["lora_parameters"];
  if (!params.is_object()) fail_input("{}: 'lora_parameters' must be an object", path);
  if (params.contains("keys") && !params["keys"].is_null())
    t.keys = string_list(params["keys"], path + ": 'lora_parameters.keys'");
  const json& n = cfg.value("num_layers", json(-1));
  if (!n.is_number_integer()) fail_input("{}: 'num_layers' must be an integer", path);
  t.last_layers = std::max<int64_t>(0, n.get<int64_t>());
}

}  // namespace

bool AdapterTargets::touches(const std::string& module, int64_t num_layers) const {
  const std::optional<int64_t> layer = layer_of(module);
  if (layer) {
    if (!layers.empty() && std::find(layers.begin(), layers.end(), *layer) == layers.end()) return false;
    if (last_layers > 0 && *layer < num_layers - last_layers) return false;
  }
  const std::string hf = per_expert_spelling(module);
  if (regex) return std::regex_match(hf, std::regex(*regex)) || std::regex_match(module, std::regex(*regex));
  if (keys.empty()) return layer.has_value() && module.find("layernorm") == std::string::npos;
  for (const std::string& k : keys)
    if (suffix_match(module, k) || suffix_match(hf, k)) return true;
  return false;
}

namespace {

AdapterTargets read_adapter_targets_unchecked(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "adapter_config.json").string();
  if (!std::filesystem::exists(path)) fail_input("{}: no adapter_config.json (a LoRA adapter directory?)", path);
  json cfg;
  try {
    cfg = json::parse(read_text_file(path));
  } catch (const json::exception& e) {  // bad syntax, and numbers beyond a double (406)
    fail_input("{}: not valid JSON: {}", path, e.what());
  }
  if (!cfg.is_object()) fail_input("{}: expected a JSON object", path);
  AdapterTargets t;
  t.config_path = path;
  if (cfg.contains("target_modules")) read_peft(cfg, path, t);
  else if (cfg.contains("lora_parameters")) read_mlx_lm(cfg, path, t);
  else fail_input("{}: neither PEFT's 'target_modules' nor mlx-lm's 'lora_parameters'", path);
  return t;
}

}  // namespace

AdapterTargets read_adapter_targets(const std::string& dir) {
  try {
    return read_adapter_targets_unchecked(dir);
  } catch (const json::exception& e) {  // a field of the wrong type
    fail_input("{}: {}", (std::filesystem::path(dir) / "adapter_config.json").string(), e.what());
  }
}

}  // namespace quantlab::io
