// A loaded Qwen3 / Qwen3-MoE / Llama model: the architecture read from config.json and typed views of
// every weight, pointing into the memory-mapped safetensors files (model-spec.md §2). Float
// checkpoints (f32/f16/bf16, experts one tensor each) and MLX-quantized ones (affine 2-8 bits, per-
// module bits, stacked switch_mlp experts, quantized embeddings) load the same way.
//
// Thread-safety: a Model is immutable after load(); any number of Sessions may share it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "model/rope.h"
#include "model/weight_binder.h"

namespace quantlab::model {

// The sizes the forward pass needs, with names from model-spec.md §2.1.
struct ModelDims {
  size_t vocab = 0;          // V: rows of the embedding and of the output head
  size_t hidden = 0;         // H
  size_t layers = 0;
  size_t heads = 0;          // n_h query heads
  size_t kv_heads = 0;       // n_kv key/value heads (GQA: query head i reads kv head i / (n_h / n_kv))
  size_t head_dim = 0;       // d, from config (Qwen3: not hidden / heads)
  size_t intermediate = 0;   // I, dense MLP width
  size_t experts = 0;        // E (0: dense model)
  size_t experts_per_token = 0;
  size_t moe_intermediate = 0;
  bool norm_topk_prob = false;
  float rms_eps = 1e-6f;
  size_t max_positions = 0;

  size_t q_dim() const { return heads * head_dim; }
  size_t kv_dim() const { return kv_heads * head_dim; }
};

struct Attention {
  Linear q, k, v, o;
  std::vector<float> q_norm, k_norm;  // [head_dim], Qwen3 families only (empty for Llama)
};

struct DenseMlp {
  Linear gate, up, down;
};

// Qwen3-MoE sparse block: router softmax -> top-k -> SwiGLU experts. No shared expert.
struct MoeMlp {
  Linear router;                                   // [E, H]
  std::vector<kernels::MatrixView> gate, up, down;  // one view per expert
};

struct Layer {
  std::vector<float> input_norm, post_attention_norm;  // [H]
  Attention attention;
  bool is_moe = false;
  DenseMlp mlp;  // when !is_moe
  MoeMlp moe;    // when is_moe
};

class Model {
 public:
  // Reads DIR/config.json and the weights. Throws quantlab::Error naming the tensor or key when a
  // tensor is missing or extra, a shape or dtype does not match the config, or the architecture is
  // not one quantlab runs.
  // `compute` is the arithmetic of the quantized matrices' products (kernels::Compute; float
  // matrices and the MoE router always run exact: a router logit moved by activation rounding sends a
  // token to another expert, a larger change than any rounding inside one).
  static Model load(const std::string& dir, kernels::Compute compute = kernels::Compute::kExact);

  const io::ModelConfig& config() const { return config_; }
  const ModelDims& dims() const { return dims_; }
  const std::string& dir() const { return weights_.dir(); }
  const io::ModelWeights& weights() const { return weights_; }

  const kernels::MatrixView& embedding() const { return embedding_; }
  const std::vector<Layer>& layers() const { return layers_; }
  const std::vector<float>& final_norm() const { return final_norm_; }
  // The output head: lm_head, or the (possibly quantized) embedding when tie_word_embeddings.
  const Linear& output() const { return output_; }
  const RopeFrequencies& rope() const { return rope_; }
  kernels::Compute compute() const { return compute_; }

  // Bytes of stored weights the model reads in place from the mapped files.
  uint64_t mapped_weight_bytes() const { return mapped_weight_bytes_; }
  // Bytes of f32 copies made at load (norm weights, biases).
  uint64_t copied_weight_bytes() const { return copied_weight_bytes_; }
  // Bytes of the mapped weight files that are resident in memory right now (mincore).
  uint64_t resident_weight_bytes() const;
  // Weight bytes one decode step reads: everything except the unused experts' share of the expert
  // matrices and all but one embedding row (for memory-bandwidth rooflines).
  uint64_t bytes_read_per_token() const;

  // The weight views module path P is read through (quant plan names: `model.layers.3.self_attn.q_proj`,
  // `model.layers.3.mlp.switch_mlp.down_proj` = one view per expert, `model.embed_tokens` = the
  // embedding and, when tied, the output head). Empty for an unknown path. For analysis probes that
  // swap in a quantized copy of one module and restore it (analysis/module_gain.h); no Session may run
  // on the model while a view is swapped.
  std::vector<kernels::MatrixView*> module_views(const std::string& module);

 private:
  Model(io::ModelConfig config, io::ModelWeights weights);
  void bind_all();
  void bind_layer(WeightBinder& binder, size_t index);
  void set_compute(kernels::Compute compute);
  static Linear bind_linear(WeightBinder& binder, const io::LinearSpec& spec);

  io::ModelConfig config_;
  io::ModelWeights weights_;
  ModelDims dims_;
  RopeFrequencies rope_;
  kernels::MatrixView embedding_;
  std::vector<Layer> layers_;
  std::vector<float> final_norm_;
  Linear output_;
  uint64_t mapped_weight_bytes_ = 0;
  uint64_t copied_weight_bytes_ = 0;
  kernels::Compute compute_ = kernels::Compute::kExact;
};

}  // namespace quantlab::model
