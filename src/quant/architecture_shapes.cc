#include "quant/architecture_shapes.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace quantlab::quant {

namespace {

void require_positive(const io::ModelConfig& c, int64_t value, const char* key) {
  if (value <= 0) fail_input("{}: '{}' must be a positive integer to derive tensor shapes (got {})", c.path, key, value);
}

void check_sizes(const io::ModelConfig& c) {
  if (c.arch == io::Architecture::kUnknown)
    fail(ErrorKind::kUnsupported, "{}: cannot derive tensor shapes for model_type '{}' (Qwen3, Qwen3-MoE and "
         "Llama only)", c.path, c.model_type);
  require_positive(c, c.vocab_size, "vocab_size");
  require_positive(c, c.hidden_size, "hidden_size");
  require_positive(c, c.num_hidden_layers, "num_hidden_layers");
  require_positive(c, c.num_attention_heads, "num_attention_heads");
  require_positive(c, c.num_key_value_heads, "num_key_value_heads");
  require_positive(c, c.head_dim, "head_dim");
  if (c.is_moe()) {
    require_positive(c, c.moe_intermediate_size, "moe_intermediate_size");
  }
}

class TensorList {
 public:
  explicit TensorList(DType dtype) : dtype_(dtype) {}
  void add(std::string name, std::vector<int64_t> shape) { out_.push_back({std::move(name), dtype_, std::move(shape)}); }
  std::vector<SourceTensor> take() { return std::move(out_); }

 private:
  DType dtype_;
  std::vector<SourceTensor> out_;
};

void add_attention(const io::ModelConfig& c, const std::string& p, TensorList& t) {
  const int64_t H = c.hidden_size, q_dim = c.num_attention_heads * c.head_dim;
  const int64_t kv_dim = c.num_key_value_heads * c.head_dim;
  const std::string a = p + "self_attn.";
  t.add(a + "q_proj.weight", {q_dim, H});
  t.add(a + "k_proj.weight", {kv_dim, H});
  t.add(a + "v_proj.weight", {kv_dim, H});
  t.add(a + "o_proj.weight", {H, q_dim});
  // HF puts a bias on all four projections when attention_bias is set (all three families).
  if (c.attention_bias) {
    t.add(a + "q_proj.bias", {q_dim});
    t.add(a + "k_proj.bias", {kv_dim});
    t.add(a + "v_proj.bias", {kv_dim});
    t.add(a + "o_proj.bias", {H});
  }
  if (c.has_qk_norm()) {
    t.add(a + "q_norm.weight", {c.head_dim});
    t.add(a + "k_norm.weight", {c.head_dim});
  }
}

void add_dense_mlp(const io::ModelConfig& c, const std::string& p, TensorList& t) {
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  if (I <= 0) fail_input("{}: 'intermediate_size' must be positive for dense layer {}", c.path, p);
  t.add(p + "mlp.gate_proj.weight", {I, H});
  t.add(p + "mlp.up_proj.weight", {I, H});
  t.add(p + "mlp.down_proj.weight", {H, I});
  if (c.mlp_bias) {
    t.add(p + "mlp.gate_proj.bias", {I});
    t.add(p + "mlp.up_proj.bias", {I});
    t.add(p + "mlp.down_proj.bias", {H});
  }
}

void add_moe(const io::ModelConfig& c, const std::string& p, TensorList& t) {
  const int64_t H = c.hidden_size, Im = c.moe_intermediate_size;
  t.add(p + "mlp.gate.weight", {c.num_experts, H});  // the router has no bias
  for (int64_t e = 0; e < c.num_experts; ++e) {
    const std::string x = p + "mlp.experts." + std::to_string(e) + ".";
    t.add(x + "gate_proj.weight", {Im, H});
    t.add(x + "up_proj.weight", {Im, H});
    t.add(x + "down_proj.weight", {H, Im});
  }
}

}  // namespace

std::vector<SourceTensor> source_tensors_from_config(const io::ModelConfig& c, std::optional<DType> dtype) {
  check_sizes(c);
  TensorList t(dtype.value_or(c.dtype.value_or(DType::kBF16)));
  t.add("model.embed_tokens.weight", {c.vocab_size, c.hidden_size});
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    t.add(p + "input_layernorm.weight", {c.hidden_size});
    add_attention(c, p, t);
    t.add(p + "post_attention_layernorm.weight", {c.hidden_size});
    if (c.is_moe_layer(layer)) add_moe(c, p, t);
    else add_dense_mlp(c, p, t);
  }
  t.add("model.norm.weight", {c.hidden_size});
  if (!c.tie_word_embeddings) t.add("lm_head.weight", {c.vocab_size, c.hidden_size});
  auto out = t.take();
  std::sort(out.begin(), out.end(), [](const SourceTensor& a, const SourceTensor& b) { return natural_less(a.name, b.name); });
  return out;
}

uint64_t count_parameters(const std::vector<SourceTensor>& tensors) {
  uint64_t n = 0;
  for (const auto& t : tensors) {
    uint64_t e = 1;
    for (int64_t d : t.shape) e *= static_cast<uint64_t>(d);
    n += e;
  }
  return n;
}

}  // namespace quantlab::quant
