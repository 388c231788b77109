// LoRA adapters in the two formats users have: Hugging Face PEFT (adapter_config.json +
// adapter_model.safetensors, lora_A (r, in) / lora_B (out, r), scaling alpha/r or alpha/sqrt(r)) and
// mlx-lm (adapter_config.json + adapters.safetensors, lora_a (in, r) / lora_b (r, out), a plain scale;
// stacked experts (E, r, in) / (E, out, r)). Both load into one canonical form: per target module,
// A [experts][r, in] and B [experts][out, r] in f32 and the scale, so that delta = scale * B @ A.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace quantlab::io {

struct LoraModule {
  std::string module;  // base module path in the base's naming, e.g. "model.layers.0.self_attn.q_proj"
  int64_t rank = 0, in = 0, out = 0;
  int64_t experts = 0;       // 0: a plain Linear; E: stacked experts (MLX switch_mlp)
  bool embedding = false;    // delta has shape (vocab, dims) = (in, out) transposed; see delta_row
  float scale = 1.0f;
  std::vector<float> a;      // [max(experts,1)][rank][in]
  std::vector<float> b;      // [max(experts,1)][out][rank]

  // Row `row` of the delta for expert e, added to base weight row `row` (cols values):
  // Linear: delta[o, i] = scale * sum_r B[o, r] A[r, i];  Embedding: delta[v, d] = scale * sum_r A[r, v] B[d, r].
  void delta_row(int64_t e, int64_t row, float* out_row) const;
  // Shape of the base weight this adapter expects ([out, in] or [E, out, in]; embeddings [vocab, dims]).
  std::vector<int64_t> base_shape() const;
};

struct Adapter {
  std::string dir;
  std::string format;  // "peft" or "mlx"
  std::vector<LoraModule> modules;
};

// Throws Error naming the file/tensor on malformed adapters; Error(kUnsupported) for DoRA and other
// adapter types that quantlab does not fuse.
Adapter load_adapter(const std::string& dir);

}  // namespace quantlab::io
