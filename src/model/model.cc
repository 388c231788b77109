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
         "{}", c.path, c.architecture_class.empty() ? "?" : c.architecture_class,
         c.model_type.empty() ? "?" : c.model_type, io::supported_architectures_text());
  if (c.raw.contains("hidden_act") && c.raw["hidden_act"] != "silu")
    fail(ErrorKind::kUnsupported, "{}: hidden_act {} is not supported (only silu)", c.path,
         c.raw["hidden_act"].dump());
  if (c.raw.contains("use_sliding_window") && c.raw["use_sliding_window"] == true)
    fail(ErrorKind::kUnsupported, "{}: use_sliding_window is true; sliding-window attention is not supported",
         c.path);
  if (c.is_moe() && c.moe_intermediate_size <= 0)
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

Model::Model(io::ModelConfig config, io::ModelWeights weights)
    : config_(std::move(config)), weights_(std::move(weights)), dims_(dims_from(config_)), rope_(config_) {}

Model Model::load(const std::string& dir, kernels::Compute compute) {
  io::ModelConfig config = io::load_model_config(dir);
  check_supported(config);
  io::ModelWeights weights = io::ModelWeights::open(dir);
  Model model(std::move(config), std::move(weights));
  model.bind_all();
  model.set_compute(compute);
  return model;
}

void Model::set_compute(kernels::Compute compute) {
  compute_ = compute;
  auto set = [compute](kernels::MatrixView& w) { w.compute = compute; };
  for (Layer& layer : layers_) {
    for (Linear* l : {&layer.attention.q, &layer.attention.k, &layer.attention.v, &layer.attention.o}) set(l->weight);
    if (!layer.is_moe) {
      for (Linear* l : {&layer.mlp.gate, &layer.mlp.up, &layer.mlp.down}) set(l->weight);
      continue;
    }
    for (auto* experts : {&layer.moe.gate, &layer.moe.up, &layer.moe.down})
      for (kernels::MatrixView& w : *experts) set(w);
  }
  set(output_.weight);
}

void Model::bind_all() {
  WeightBinder binder(weights_, config_);
  const bool tied = is_tied(config_, binder);
  const io::ModelSpec spec = io::model_spec(config_, tied);
  embedding_ = bind_linear(binder, spec.embedding).weight;
  layers_.resize(dims_.layers);
  for (size_t i = 0; i < dims_.layers; ++i) bind_layer(binder, i);
  final_norm_ = binder.vector_f32(spec.final_norm, config_.hidden_size);
  if (spec.output) {
    output_ = bind_linear(binder, *spec.output);
  } else {
    output_.weight = embedding_;
    // A tied checkpoint may still carry a copy of the head; mlx-lm drops it, and so do we.
    for (const char* suffix : {".weight", ".scales", ".biases"}) binder.ignore(std::string("lm_head") + suffix);
  }
  binder.check_all_used();
  mapped_weight_bytes_ = binder.mapped_bytes();
  copied_weight_bytes_ = binder.copied_bytes();
}

Linear Model::bind_linear(WeightBinder& binder, const io::LinearSpec& spec) {
  return binder.linear(spec.path, spec.out, spec.in, spec.bias);
}

// Binds what the architecture registry lists for this layer (io::layer_spec).
void Model::bind_layer(WeightBinder& binder, size_t index) {
  const io::LayerSpec s = io::layer_spec(config_, static_cast<int64_t>(index));
  Layer& layer = layers_[index];
  layer.input_norm = binder.vector_f32(s.input_norm, s.hidden);
  layer.post_attention_norm = binder.vector_f32(s.post_attention_norm, s.hidden);
  Attention& a = layer.attention;
  a.q = bind_linear(binder, s.q);
  a.k = bind_linear(binder, s.k);
  a.v = bind_linear(binder, s.v);
  a.o = bind_linear(binder, s.o);
  if (s.q_norm) a.q_norm = binder.vector_f32(*s.q_norm, s.head_dim);
  if (s.k_norm) a.k_norm = binder.vector_f32(*s.k_norm, s.head_dim);
  layer.is_moe = s.moe;
  if (!s.moe) {
    layer.mlp.gate = bind_linear(binder, s.gate);
    layer.mlp.up = bind_linear(binder, s.up);
    layer.mlp.down = bind_linear(binder, s.down);
    return;
  }
  MoeMlp& m = layer.moe;
  m.router = bind_linear(binder, s.router);
  // Each projection may be stacked (mlx-lm's switch_mlp) or one tensor per expert (HF); decided per
  // projection, since a checkpoint may mix them (e.g. stacked float down_proj beside quantized ones).
  auto experts = [&](const io::ExpertSpec& x) {
    if (binder.has(x.stacked_path() + ".weight")) return binder.stacked(x.stacked_path(), s.experts, x.out, x.in);
    std::vector<kernels::MatrixView> views;
    for (int64_t e = 0; e < s.experts; ++e) views.push_back(binder.linear(x.per_expert_path(e), x.out, x.in, false).weight);
    return views;
  };
  m.gate = experts(s.expert_projections[0]);
  m.up = experts(s.expert_projections[1]);
  m.down = experts(s.expert_projections[2]);
}

std::vector<kernels::MatrixView*> Model::module_views(const std::string& module) {
  const bool tied = output_.weight.data == embedding_.data;
  const io::ModelSpec spec = io::model_spec(config_, tied);
  std::vector<kernels::MatrixView*> views;
  if (module == spec.embedding.path) {
    views.push_back(&embedding_);
    if (tied) views.push_back(&output_.weight);
    return views;
  }
  if (spec.output && module == spec.output->path) return {&output_.weight};
  for (size_t i = 0; i < layers_.size() && views.empty(); ++i) {
    const io::LayerSpec s = io::layer_spec(config_, static_cast<int64_t>(i));
    Layer& l = layers_[i];
    const std::pair<const io::LinearSpec*, Linear*> linears[] = {
        {&s.q, &l.attention.q}, {&s.k, &l.attention.k}, {&s.v, &l.attention.v}, {&s.o, &l.attention.o},
        {&s.gate, &l.mlp.gate}, {&s.up, &l.mlp.up},     {&s.down, &l.mlp.down}, {&s.router, &l.moe.router}};
    for (const auto& [linear_spec, linear] : linears)
      if (!linear_spec->path.empty() && linear_spec->path == module) return {&linear->weight};
    if (!l.is_moe) continue;
    std::vector<kernels::MatrixView>* stacks[] = {&l.moe.gate, &l.moe.up, &l.moe.down};
    for (size_t p = 0; p < s.expert_projections.size() && p < 3; ++p)
      if (s.expert_projections[p].stacked_path() == module)
        for (auto& v : *stacks[p]) views.push_back(&v);
  }
  return views;
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
      expert_bytes += kernels::stored_bytes(l.moe.gate[e]) + kernels::stored_bytes(l.moe.up[e]) + kernels::stored_bytes(l.moe.down[e]);
  }
  uint64_t bytes = mapped_weight_bytes_ + copied_weight_bytes_ - expert_bytes;
  if (dims_.experts) bytes += expert_bytes * dims_.experts_per_token / dims_.experts;
  const bool tied = output_.weight.data == embedding_.data;
  if (!tied) bytes -= kernels::stored_bytes(embedding_) - kernels::stored_bytes(embedding_) / std::max<size_t>(dims_.vocab, 1);
  return bytes;
}

}  // namespace quantlab::model
