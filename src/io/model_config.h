// config.json of Qwen3, Qwen3-MoE and Llama checkpoints (transformers v4 and v5 spellings) and the
// MLX "quantization" block. Unknown architectures parse too (arch == kUnknown) so that they can still
// be quantized generically; their architecture fields are then left at zero.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/architecture.h"

namespace quantlab::io {

struct RopeScaling {
  std::string type = "default";  // default | linear | llama3 | dynamic | yarn
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

// How one module is stored (MLX affine).
struct ModuleQuant {
  int bits = 4;
  int group_size = 64;
  std::string mode = "affine";
  bool operator==(const ModuleQuant&) const = default;
};

// The "quantization" block: global settings plus per-module entries (dict or false).
struct QuantizationConfig {
  ModuleQuant global;
  // Module path (e.g. "model.layers.0.mlp.gate") -> settings, or nullopt for `false` (kept float).
  std::map<std::string, std::optional<ModuleQuant>> per_module;

  // mlx-lm's rule: a per-path entry decides; else the global settings iff `P.scales` exists.
  std::optional<ModuleQuant> resolve(const std::string& module_path, bool has_scales) const;
  nlohmann::ordered_json to_json() const;
};

struct ModelConfig {
  std::string path;               // config.json, for messages
  nlohmann::ordered_json raw;     // the file as read, key order kept
  Architecture arch = Architecture::kUnknown;
  std::string model_type;         // "qwen3", "qwen3_moe", "llama", ...
  std::string architecture_class; // "Qwen3ForCausalLM", ...

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  bool mlp_bias = false;

  // Qwen3-MoE.
  int64_t num_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  int64_t decoder_sparse_step = 1;
  bool norm_topk_prob = false;
  std::vector<int64_t> mlp_only_layers;

  std::optional<DType> dtype;  // torch_dtype / dtype
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;
  std::optional<QuantizationConfig> quantization;

  bool is_moe() const {
    const ArchitectureInfo* family = find_architecture(arch);
    return family && family->moe && num_experts > 0;
  }
  // Layer i is sparse iff not in mlp_only_layers and (i+1) % decoder_sparse_step == 0.
  bool is_moe_layer(int64_t layer) const;
  bool has_qk_norm() const {
    const ArchitectureInfo* family = find_architecture(arch);
    return family && family->qk_norm;
  }
};

// Reads DIR/config.json. Throws Error naming the file and the key on malformed or inconsistent input.
ModelConfig load_model_config(const std::string& dir);
ModelConfig parse_model_config(const nlohmann::ordered_json& j, const std::string& path);

// The config as mlx-lm's model classes need it: v5 spellings copied to the v4 keys that mlx-lm reads
// (rope_theta, num_experts, torch_dtype), dtype set, the quantization block (and its copy under
// quantization_config) set or removed.
nlohmann::ordered_json config_for_output(const ModelConfig& config, std::optional<DType> dtype,
                                         const std::optional<QuantizationConfig>& quantization);

}  // namespace quantlab::io
