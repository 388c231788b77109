#include "model/model.h"

#include <sys/mman.h>
#include <unistd.h>

#include <fmt/format.h>

#include "core/error.h"

namespace quantlab::model {

namespace {

size_t to_size(int64_t v) { return static_cast<size_t>(v); }

ModelDims dims_from(const io::ModelConfig& c) {
  ModelDims d;
  d.vocab = to_size(c.vocab_size);
  d.hidden = to_size(c.hidden_size);
  d.layers = to_size(c.num_hidden_layers);
  d.heads = to_size(c.num_attention_heads);
  d.kv_heads = to_size(c.num_key_value_heads);
  d.head_dim = to_size(c.head_dim);
  d.intermediate = to_size(c.intermediate_size);
  if (c.is_moe()) {
    d.experts = to_size(c.num_experts);
    d.experts_per_token = to_size(c.num_experts_per_tok);
    d.moe_intermediate = to_size(c.moe_intermediate_size);
    d.norm_topk_prob = c.norm_topk_prob;
  }
  d.rms_eps = static_cast<float>(c.rms_norm_eps);
  d.max_positions = to_size(c.max_position_embeddings);
  return d;
}

void check_supported(const io::ModelConfig& c) {
  if (c.arch == io::Architecture::kUnknown)
    fail(ErrorKind::kUnsupported, "{}: architecture '{}' (model_type '{}') is not supported; quantlab runs "
         "Qwen3ForCausalLM, Qwen3MoeForCausalLM and LlamaForCausalLM", c.path,
         c.architecture_class.empty() ? "?" : c.architecture_class, c.model_type.empty() ? "?" : c.model_type);
  if (c.raw.contains("hidden_act") && c.raw["hidden_act"] != "silu")
    fail(ErrorKind::kUnsupported, "{}: hidden_act {} is not supported (only silu)", c.path,
         c.raw["hidden_act"].dump());
  if (c.raw.contains("use_sliding_window") && c.raw["use_sliding_window"] == true)
    fail(ErrorKind::kUnsupported, "{}: use_sliding_window is true; sliding-window attention is not supported",
         c.path);
  if (c.arch == io::Architecture::kQwen3Moe && c.num_experts > 0 && c.moe_intermediate_size <= 0)
    fail_input("{}: moe_intermediate_size must be positive", c.path);
  for (int64_t l : c.mlp_only_layers)
    if (l < 0 || l >= c.num_hidden_layers)
      fail_input("{}: mlp_only_layers names layer {}, but the model has {} layers", c.path, l, c.num_hidden_layers);
  if (c.intermediate_size <= 0) {
    for (int64_t i = 0; i < c.num_hidden_layers; ++i)
      if (!c.is_moe_layer(i)) fail_input("{}: layer {} is dense but intermediate_size is missing", c.path, i);
  }
}

// Weights-tied output head: the flag decides; when config.json does not say, the file does (mlx-lm
// and transformers disagree on the default, so neither default is trusted).
bool is_tied(const io::ModelConfig& c, const WeightBinder& binder) {
  if (c.raw.contains("tie_word_embeddings")) return c.tie_word_embeddings;
  return !binder.has("lm_head.weight");
}

}  // namespace

uint64_t stored_bytes(const kernels::MatrixView& w) {
  switch (w.type) {
    case kernels::WeightType::kF32: return w.rows * w.cols * 4;
    case kernels::WeightType::kF16:
    case kernels::WeightType::kBF16: return w.rows * w.cols * 2;
    case kernels::WeightType::kAffine:
      return w.rows * (w.packed_words_per_row() * 4 + 2 * w.groups_per_row() * dtype_size(w.scale_type));
  }
  return 0;
}

Model::Model(io::ModelConfig config, io::ModelWeights weights)
    : config_(std::move(config)), weights_(std::move(weights)), dims_(dims_from(config_)), rope_(config_) {}

Model Model::load(const std::string& dir) {
  io::ModelConfig config = io::load_model_config(dir);
  check_supported(config);
  io::ModelWeights weights = io::ModelWeights::open(dir);
  Model model(std::move(config), std::move(weights));
  model.bind_all();
  return model;
}

void Model::bind_all() {
  WeightBinder binder(weights_, config_);
  const int64_t V = config_.vocab_size, H = config_.hidden_size;
  embedding_ = binder.linear("model.embed_tokens", V, H, false).weight;
  layers_.resize(dims_.layers);
  for (size_t i = 0; i < dims_.layers; ++i) bind_layer(binder, i);
  final_norm_ = binder.vector_f32("model.norm.weight", H);
  if (is_tied(config_, binder)) {
    output_.weight = embedding_;
    // A tied checkpoint may still carry a copy of the head; mlx-lm drops it, and so do we.
    for (const char* suffix : {".weight", ".scales", ".biases"}) binder.ignore(std::string("lm_head") + suffix);
  } else {
    output_ = binder.linear("lm_head", V, H, false);
  }
  binder.check_all_used();
  mapped_weight_bytes_ = binder.mapped_bytes();
  copied_weight_bytes_ = binder.copied_bytes();
}

void Model::bind_layer(WeightBinder& binder, size_t index) {
  const std::string p = fmt::format("model.layers.{}.", index);
  const int64_t H = config_.hidden_size, d = config_.head_dim;
  const int64_t q_dim = config_.num_attention_heads * d, kv_dim = config_.num_key_value_heads * d;
  const bool attn_bias = config_.attention_bias, mlp_bias = config_.mlp_bias;
  Layer& layer = layers_[index];
  layer.input_norm = binder.vector_f32(p + "input_layernorm.weight", H);
  layer.post_attention_norm = binder.vector_f32(p + "post_attention_layernorm.weight", H);
  Attention& a = layer.attention;
  a.q = binder.linear(p + "self_attn.q_proj", q_dim, H, attn_bias);
  a.k = binder.linear(p + "self_attn.k_proj", kv_dim, H, attn_bias);
  a.v = binder.linear(p + "self_attn.v_proj", kv_dim, H, attn_bias);
  a.o = binder.linear(p + "self_attn.o_proj", H, q_dim, attn_bias);
  if (config_.has_qk_norm()) {
    a.q_norm = binder.vector_f32(p + "self_attn.q_norm.weight", d);
    a.k_norm = binder.vector_f32(p + "self_attn.k_norm.weight", d);
  }
  layer.is_moe = config_.is_moe_layer(static_cast<int64_t>(index));
  if (!layer.is_moe) {
    const int64_t I = config_.intermediate_size;
    layer.mlp.gate = binder.linear(p + "mlp.gate_proj", I, H, mlp_bias);
    layer.mlp.up = binder.linear(p + "mlp.up_proj", I, H, mlp_bias);
    layer.mlp.down = binder.linear(p + "mlp.down_proj", H, I, mlp_bias);
    return;
  }
  const int64_t E = config_.num_experts, Im = config_.moe_intermediate_size;
  MoeMlp& m = layer.moe;
  m.router = binder.linear(p + "mlp.gate", E, H, false);
  // Each projection may be stacked (mlx-lm's switch_mlp) or one tensor per expert (HF); decided per
  // projection, since a checkpoint may mix them (e.g. stacked float down_proj beside quantized ones).
  auto experts = [&](const char* proj, int64_t out, int64_t in) {
    const std::string stacked = p + "mlp.switch_mlp." + proj;
    if (binder.has(stacked + ".weight")) return binder.stacked(stacked, E, out, in);
    std::vector<kernels::MatrixView> views;
    for (int64_t e = 0; e < E; ++e)
      views.push_back(binder.linear(fmt::format("{}mlp.experts.{}.{}", p, e, proj), out, in, false).weight);
    return views;
  };
  m.gate = experts("gate_proj", Im, H);
  m.up = experts("up_proj", Im, H);
  m.down = experts("down_proj", H, Im);
}

uint64_t Model::resident_weight_bytes() const {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  uint64_t resident = 0;
  for (const auto& file : weights_.files()) {
    const MappedFile& m = file->mapped();
    if (m.size() == 0) continue;
    std::vector<unsigned char> pages((m.size() + page - 1) / page);
    if (mincore(const_cast<uint8_t*>(m.data()), m.size(), pages.data()) != 0) continue;
    for (unsigned char p : pages) resident += (p & 1) ? page : 0;
  }
  return resident;
}

uint64_t Model::bytes_read_per_token() const {
  uint64_t expert_bytes = 0;
  for (const Layer& l : layers_) {
    if (!l.is_moe) continue;
    for (size_t e = 0; e < l.moe.gate.size(); ++e)
      expert_bytes += stored_bytes(l.moe.gate[e]) + stored_bytes(l.moe.up[e]) + stored_bytes(l.moe.down[e]);
  }
  uint64_t bytes = mapped_weight_bytes_ + copied_weight_bytes_ - expert_bytes;
  if (dims_.experts) bytes += expert_bytes * dims_.experts_per_token / dims_.experts;
  const bool tied = output_.weight.data == embedding_.data;
  if (!tied) bytes -= stored_bytes(embedding_) - stored_bytes(embedding_) / std::max<size_t>(dims_.vocab, 1);
  return bytes;
}

}  // namespace quantlab::model
