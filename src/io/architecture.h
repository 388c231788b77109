// The architecture registry: per model family, what config.json calls it and which tensors (names,
// shapes, roles) each layer holds. Everything that needs a family's tensors iterates this one place:
// the loader's binder (model::Model::bind_layer), the shapes derived from config.json alone
// (quant::source_tensors_from_config, used by `plan` and `synth`) and the quantization plan (which
// modules are routers, which experts stack). Adding a family is one row in architecture.cc plus its
// forward-pass differences (docs/ARCHITECTURE.md, "How to add a model family").
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace quantlab::io {

enum class Architecture { kQwen3, kQwen3Moe, kLlama, kQwen2, kUnknown };

struct ModelConfig;

// One family's row.
struct ArchitectureInfo {
  Architecture arch = Architecture::kUnknown;
  std::string_view model_type;  // config.json "model_type"
  std::string_view class_name;  // config.json "architectures"[0]
  bool qk_norm = false;         // per-head RMSNorm of q and k (Qwen3)
  bool moe = false;             // sparse layers with a router and experts
  // MoE routers are quantized at these settings whatever the global width (mlx-lm's model predicate:
  // a slightly wrong router logit sends a token to another expert).
  int router_bits = 0;
  int router_group_size = 0;
  // Additive biases on q/k/v (not o) whatever config.json's attention_bias says (Qwen2). They stay
  // float when the weights are quantized, as mlx-lm keeps every bias.
  bool qkv_bias = false;
};

// Every family quantlab runs, in the order messages list them.
std::span<const ArchitectureInfo> all_architectures();
// The row of a family (nullptr for kUnknown).
const ArchitectureInfo* find_architecture(Architecture arch);
// Detects a family from config.json's model_type or architecture class; kUnknown when neither matches.
Architecture detect_architecture(const std::string& model_type, const std::string& class_name);
std::string_view architecture_name(Architecture a);  // "qwen3", "qwen3_moe", "llama", "qwen2", "unknown"
// "Qwen3ForCausalLM, Qwen3MoeForCausalLM and LlamaForCausalLM", for messages.
std::string supported_architectures_text();

enum class TensorRole { kEmbedding, kLinear, kNorm, kBias, kRouter, kExpert, kOutputHead };

// A Linear (or Embedding) module of a layer: `path`.weight [out, in] (+ `path`.bias [out]).
struct LinearSpec {
  std::string path;
  int64_t out = 0;
  int64_t in = 0;
  bool bias = false;
};

// One projection of a layer's experts, in both of the spellings checkpoints use: Hugging Face's one
// tensor per expert (`per_expert_path(e)`) and mlx-lm's stacked switch_mlp ([experts, out, in]).
struct ExpertSpec {
  std::string prefix;   // "model.layers.L.mlp"
  std::string proj;     // "gate_proj", "up_proj", "down_proj"
  int64_t out = 0;
  int64_t in = 0;
  std::string per_expert_path(int64_t expert) const;  // prefix.experts.E.proj
  std::string stacked_path() const;                    // prefix.switch_mlp.proj
};

// The tensors of decoder layer L, as the family defines them.
struct LayerSpec {
  std::string input_norm;            // weight names of the two RMSNorms, [hidden]
  std::string post_attention_norm;
  int64_t hidden = 0;
  LinearSpec q, k, v, o;
  std::optional<std::string> q_norm, k_norm;  // [head_dim] (qk_norm families)
  int64_t head_dim = 0;
  bool moe = false;
  LinearSpec gate, up, down;         // dense MLP (moe == false)
  LinearSpec router;                 // moe: [experts, hidden], no bias
  int64_t experts = 0;
  std::vector<ExpertSpec> expert_projections;  // moe: gate_proj, up_proj, down_proj
};

// Tensors outside the layers.
struct ModelSpec {
  LinearSpec embedding;              // model.embed_tokens [vocab, hidden]
  std::string final_norm;            // model.norm.weight [hidden]
  std::optional<LinearSpec> output;  // lm_head [vocab, hidden]; nullopt when tied to the embedding
};

// Throws Error(kUnsupported) for an unknown family and Error(kInvalidInput), naming config.json and the
// key, when a size the shapes need is missing or not positive.
LayerSpec layer_spec(const ModelConfig& config, int64_t layer);
ModelSpec model_spec(const ModelConfig& config, bool tied);

// A tensor of the Hugging Face checkpoint (experts one tensor each), with its role.
struct RegistryTensor {
  std::string name;
  std::vector<int64_t> shape;
  TensorRole role = TensorRole::kLinear;
};
// Every tensor of the checkpoint config.json describes, layer by layer (unsorted).
std::vector<RegistryTensor> checkpoint_tensors(const ModelConfig& config);

// True when `module` (a path without ".weight") is a MoE router in this family.
bool is_router_module(Architecture arch, const std::string& module);

}  // namespace quantlab::io
