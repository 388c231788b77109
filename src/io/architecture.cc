#include "io/architecture.h"

#include <array>

#include <fmt/format.h>

#include "core/error.h"
#include "io/model_config.h"

namespace quantlab::io {

namespace {

// The families. Qwen3-MoE routers at 8 bits / group 64 as mlx-lm's qwen3_moe model predicate does.
// Qwen2 (Qwen2 / Qwen2.5): Qwen3's layout without q/k norms, with q/k/v biases.
constexpr std::array<ArchitectureInfo, 4> kFamilies = {{
    {Architecture::kQwen3, "qwen3", "Qwen3ForCausalLM", true, false, 0, 0, false},
    {Architecture::kQwen3Moe, "qwen3_moe", "Qwen3MoeForCausalLM", true, true, 8, 64, false},
    {Architecture::kLlama, "llama", "LlamaForCausalLM", false, false, 0, 0, false},
    {Architecture::kQwen2, "qwen2", "Qwen2ForCausalLM", false, false, 0, 0, true},
}};

std::string layer_prefix(int64_t layer) { return fmt::format("model.layers.{}.", layer); }

void require_positive(const ModelConfig& c, int64_t value, const char* key) {
  if (value <= 0)
    fail_input("{}: '{}' must be a positive integer to derive tensor shapes (got {})", c.path, key, value);
}

void check_sizes(const ModelConfig& c) {
  if (c.arch == Architecture::kUnknown)
    fail(ErrorKind::kUnsupported, "{}: cannot derive tensor shapes for model_type '{}' (only {})", c.path,
         c.model_type, supported_architectures_text());
  require_positive(c, c.vocab_size, "vocab_size");
  require_positive(c, c.hidden_size, "hidden_size");
  require_positive(c, c.num_hidden_layers, "num_hidden_layers");
  require_positive(c, c.num_attention_heads, "num_attention_heads");
  require_positive(c, c.num_key_value_heads, "num_key_value_heads");
  require_positive(c, c.head_dim, "head_dim");
  if (c.is_moe()) require_positive(c, c.moe_intermediate_size, "moe_intermediate_size");
}

void add_linear(const LinearSpec& l, TensorRole role, std::vector<RegistryTensor>& out) {
  out.push_back({l.path + ".weight", {l.out, l.in}, role});
  if (l.bias) out.push_back({l.path + ".bias", {l.out}, TensorRole::kBias});
}

}  // namespace

std::string ExpertSpec::per_expert_path(int64_t expert) const {
  return fmt::format("{}.experts.{}.{}", prefix, expert, proj);
}

std::string ExpertSpec::stacked_path() const { return prefix + ".switch_mlp." + proj; }

std::span<const ArchitectureInfo> all_architectures() { return kFamilies; }

const ArchitectureInfo* find_architecture(Architecture arch) {
  for (const auto& f : kFamilies)
    if (f.arch == arch) return &f;
  return nullptr;
}

Architecture detect_architecture(const std::string& model_type, const std::string& class_name) {
  for (const auto& f : kFamilies)
    if (model_type == f.model_type || class_name == f.class_name) return f.arch;
  return Architecture::kUnknown;
}

std::string_view architecture_name(Architecture a) {
  const ArchitectureInfo* f = find_architecture(a);
  return f ? f->model_type : "unknown";
}

std::string supported_architectures_text() {
  std::string text;
  for (size_t i = 0; i < kFamilies.size(); ++i) {
    if (i) text += i + 1 == kFamilies.size() ? " and " : ", ";
    text += kFamilies[i].class_name;
  }
  return text;
}

LayerSpec layer_spec(const ModelConfig& c, int64_t layer) {
  const std::string p = layer_prefix(layer);
  const int64_t H = c.hidden_size, d = c.head_dim;
  const int64_t q_dim = c.num_attention_heads * d, kv_dim = c.num_key_value_heads * d;
  const bool ab = c.attention_bias;  // HF puts a bias on all four projections when the config says so
  const ArchitectureInfo* family = find_architecture(c.arch);
  const bool qkv_bias = ab || (family && family->qkv_bias);
  LayerSpec s;
  s.hidden = H;
  s.head_dim = d;
  s.input_norm = p + "input_layernorm.weight";
  s.post_attention_norm = p + "post_attention_layernorm.weight";
  s.q = {p + "self_attn.q_proj", q_dim, H, qkv_bias};
  s.k = {p + "self_attn.k_proj", kv_dim, H, qkv_bias};
  s.v = {p + "self_attn.v_proj", kv_dim, H, qkv_bias};
  s.o = {p + "self_attn.o_proj", H, q_dim, ab};
  if (family && family->qk_norm) {
    s.q_norm = p + "self_attn.q_norm.weight";
    s.k_norm = p + "self_attn.k_norm.weight";
  }
  s.moe = c.is_moe_layer(layer);
  if (!s.moe) {
    const int64_t I = c.intermediate_size;
    s.gate = {p + "mlp.gate_proj", I, H, c.mlp_bias};
    s.up = {p + "mlp.up_proj", I, H, c.mlp_bias};
    s.down = {p + "mlp.down_proj", H, I, c.mlp_bias};
    return s;
  }
  const int64_t Im = c.moe_intermediate_size;
  s.experts = c.num_experts;
  s.router = {p + "mlp.gate", c.num_experts, H, false};  // the router has no bias
  const std::string mlp = p + "mlp";
  s.expert_projections = {{mlp, "gate_proj", Im, H}, {mlp, "up_proj", Im, H}, {mlp, "down_proj", H, Im}};
  return s;
}

ModelSpec model_spec(const ModelConfig& c, bool tied) {
  ModelSpec m;
  m.embedding = {"model.embed_tokens", c.vocab_size, c.hidden_size, false};
  m.final_norm = "model.norm.weight";
  if (!tied) m.output = LinearSpec{"lm_head", c.vocab_size, c.hidden_size, false};
  return m;
}

std::vector<RegistryTensor> checkpoint_tensors(const ModelConfig& c) {
  check_sizes(c);
  std::vector<RegistryTensor> out;
  const ModelSpec m = model_spec(c, c.tie_word_embeddings);
  out.push_back({m.embedding.path + ".weight", {m.embedding.out, m.embedding.in}, TensorRole::kEmbedding});
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    const LayerSpec s = layer_spec(c, layer);
    out.push_back({s.input_norm, {s.hidden}, TensorRole::kNorm});
    for (const LinearSpec* l : {&s.q, &s.k, &s.v, &s.o}) add_linear(*l, TensorRole::kLinear, out);
    if (s.q_norm) out.push_back({*s.q_norm, {s.head_dim}, TensorRole::kNorm});
    if (s.k_norm) out.push_back({*s.k_norm, {s.head_dim}, TensorRole::kNorm});
    out.push_back({s.post_attention_norm, {s.hidden}, TensorRole::kNorm});
    if (!s.moe) {
      if (s.gate.out <= 0)
        fail_input("{}: 'intermediate_size' must be positive for dense layer {}", c.path, layer_prefix(layer));
      for (const LinearSpec* l : {&s.gate, &s.up, &s.down}) add_linear(*l, TensorRole::kLinear, out);
      continue;
    }
    add_linear(s.router, TensorRole::kRouter, out);
    for (int64_t e = 0; e < s.experts; ++e)
      for (const ExpertSpec& x : s.expert_projections)
        out.push_back({x.per_expert_path(e) + ".weight", {x.out, x.in}, TensorRole::kExpert});
  }
  out.push_back({m.final_norm, {c.hidden_size}, TensorRole::kNorm});
  if (m.output) out.push_back({m.output->path + ".weight", {m.output->out, m.output->in}, TensorRole::kOutputHead});
  return out;
}

bool is_router_module(Architecture arch, const std::string& module) {
  const ArchitectureInfo* family = find_architecture(arch);
  return family && family->moe && module.ends_with("mlp.gate");
}

}  // namespace quantlab::io
