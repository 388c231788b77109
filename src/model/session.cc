#include "model/session.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/interrupt.h"
#include "kernels/kernels.h"

namespace quantlab::model {

std::string_view phase_name(Phase p) {
  switch (p) {
    case Phase::kEmbed: return "embed";
    case Phase::kNorms: return "norms";
    case Phase::kAttentionProj: return "attention_proj";
    case Phase::kQkNormRope: return "qk_norm_rope";
    case Phase::kAttention: return "attention";
    case Phase::kMlp: return "mlp";
    case Phase::kRouter: return "router";
    case Phase::kExperts: return "experts";
    case Phase::kHead: return "head";
    case Phase::kSample: return "sample";
    case Phase::kCount: break;
  }
  return "?";
}

namespace {

size_t context_limit(const Model& model, const SessionOptions& options) {
  const size_t model_max = std::max<size_t>(model.dims().max_positions, 1);
  return options.max_context ? std::min(options.max_context, model_max) : model_max;
}

}  // namespace

Session::Session(const Model& model, ThreadPool& pool, SessionOptions options)
    : model_(model), pool_(pool), options_(options),
      cache_(model.dims().layers, model.dims().kv_dim(), context_limit(model, options)) {
  if (options_.prefill_chunk == 0) options_.prefill_chunk = 1;
}

std::vector<float> Session::forward(std::span<const int32_t> tokens, bool all_logits) {
  stop_point("forward");  // the changed-input tests' hook (core/interrupt.h)
  if (tokens.empty()) fail(ErrorKind::kUsage, "no tokens to run");
  const size_t V = model_.dims().vocab;
  for (int32_t id : tokens)
    if (id < 0 || static_cast<size_t>(id) >= V)
      fail(ErrorKind::kUsage, "token id {} is outside the vocabulary [0, {})", id, V);
  check_room(tokens.size());
  const auto start = std::chrono::steady_clock::now();
  std::vector<float> logits((all_logits ? tokens.size() : 1) * V);
  for (size_t first = 0; first < tokens.size(); first += options_.prefill_chunk) {
    const size_t n = std::min(options_.prefill_chunk, tokens.size() - first);
    const bool last_chunk = first + n == tokens.size();
    // Rows of this chunk whose logits are wanted: all of them, or only the final token's.
    const size_t first_row = all_logits ? 0 : (last_chunk ? n - 1 : n);
    float* out = logits.data() + (all_logits ? first * V : 0);
    forward_chunk(tokens.subspan(first, n), first_row, out);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (tokens.size() == 1) {
    timings_.decode_seconds += seconds;
    timings_.decode_tokens += 1;
  } else {
    timings_.prefill_seconds += seconds;
    timings_.prefill_tokens += tokens.size();
  }
  return logits;
}

void Session::embed(std::span<const int32_t> tokens) {
  ScopedPhase phase(timings_, Phase::kEmbed);
  const size_t H = model_.dims().hidden;
  for (size_t i = 0; i < tokens.size(); ++i)
    kernels::dequantize_row(model_.embedding(), static_cast<size_t>(tokens[i]), scratch_.x.data() + i * H);
}

void Session::prepare_rope(size_t first_position, size_t n) {
  const size_t half = model_.dims().head_dim / 2;
  for (size_t i = 0; i < n; ++i)
    model_.rope().at(first_position + i, scratch_.cos.data() + i * half, scratch_.sin.data() + i * half);
}

void Session::disable_experts(size_t layer, const std::vector<int32_t>& experts) {
  const ModelDims& d = model_.dims();
  if (layer >= d.layers || !model_.layers()[layer].is_moe) fail(ErrorKind::kUsage, "layer {} is not a MoE layer", layer);
  disabled_experts_.resize(d.layers);
  auto& mask = disabled_experts_[layer];
  mask.clear();
  if (experts.empty()) return;
  mask.assign(d.experts, 0);
  for (int32_t e : experts) {
    if (e < 0 || static_cast<size_t>(e) >= d.experts)
      fail(ErrorKind::kUsage, "layer {}: expert {} does not exist (the model has {})", layer, e, d.experts);
    mask[static_cast<size_t>(e)] = 1;
  }
  size_t left = 0;
  for (uint8_t m : mask) left += m == 0;
  if (left < d.experts_per_token)
    fail(ErrorKind::kUsage, "layer {}: {} experts left, fewer than the {} each token needs", layer, left,
         d.experts_per_token);
}

void Session::report_routing(size_t layer, const Batch& batch) const {
  const ModelDims& d = model_.dims();
  const size_t n = batch.n, k = d.experts_per_token;
  RoutingEvent e{layer, batch.first_position, n, d.experts, k, d.hidden,
                 std::span<const int32_t>(scratch_.route_expert.data(), n * k),
                 std::span<const float>(scratch_.route_weight.data(), n * k),
                 std::span<const float>(scratch_.router.data(), n * d.experts),
                 std::span<const float>(scratch_.expert_out.data(), n * k * d.hidden)};
  routing_hook_(e);
}

void Session::report_attention_inputs(size_t layer, const Batch& batch) const {
  const ModelDims& d = model_.dims();
  activation_hook_({layer, LinearSite::kAttentionInput, batch.n, d.hidden, scratch_.normed.data(), {}});
  activation_hook_({layer, LinearSite::kAttentionOutput, batch.n, d.q_dim(), scratch_.attn.data(), {}});
}

// After mlp_block: `normed` holds the MLP input and `gate` the down projections' inputs (a MoE layer's
// in expert-grouped order for a batch, in slot order for one token; see model/blocks.cc).
void Session::report_mlp_inputs(size_t layer, const Batch& batch) {
  const ModelDims& d = model_.dims();
  const size_t n = batch.n;
  if (!model_.layers()[layer].is_moe) {
    activation_hook_({layer, LinearSite::kMlpInput, n, d.hidden, scratch_.normed.data(), {}});
    activation_hook_({layer, LinearSite::kMlpDown, n, d.intermediate, scratch_.gate.data(), {}});
    return;
  }
  const size_t k = d.experts_per_token;
  const std::span<const int32_t> chosen(scratch_.route_expert.data(), n * k);
  activation_hook_({layer, LinearSite::kMlpInput, n, d.hidden, scratch_.normed.data(), chosen});
  expert_of_row_ = n == 1 ? std::vector<int32_t>(chosen.begin(), chosen.end())
                          : experts_of_grouped_rows(chosen, d.experts);
  activation_hook_({layer, LinearSite::kExpertDown, n * k, d.moe_intermediate, scratch_.gate.data(), expert_of_row_});
}

void Session::check_room(size_t tokens) const {
  if (position() + tokens > max_context())
    fail(ErrorKind::kUsage, "{} tokens after {} cached ones exceed the context limit of {}", tokens, position(),
         max_context());
}

Batch Session::start_batch(size_t n) {
  const Batch batch{n, position()};
  cache_.reserve(batch.first_position + n);
  scratch_.ensure(model_.dims(), n, batch.first_position + n, pool_.size());
  ScopedPhase phase(timings_, Phase::kQkNormRope);
  prepare_rope(batch.first_position, n);
  return batch;
}

void Session::forward_chunk(std::span<const int32_t> tokens, size_t first_row, float* logits) {
  const ModelDims& dims = model_.dims();
  const Batch batch = start_batch(tokens.size());
  embed(tokens);
  run_layers(batch, 0, dims.layers);
  cache_.set_size(batch.first_position + batch.n);
  if (first_row >= batch.n) return;
  const size_t rows = batch.n - first_row, H = dims.hidden;
  {
    ScopedPhase phase(timings_, Phase::kNorms);
    rms_norm_rows(scratch_.x.data() + first_row * H, model_.final_norm(), rows, dims.rms_eps,
                  scratch_.normed.data());
  }
  if (activation_hook_)
    activation_hook_({dims.layers, LinearSite::kHeadInput, rows, H, scratch_.normed.data(), {}});
  ScopedPhase phase(timings_, Phase::kHead);
  apply_linear(model_.output(), scratch_.normed.data(), rows, logits, pool_);
}

void Session::run_layers(const Batch& batch, size_t first, size_t last) {
  const ModelDims& dims = model_.dims();
  for (size_t l = first; l < last; ++l) {
    const Layer& layer = model_.layers()[l];
    attention_block(layer, l, dims, batch, cache_, scratch_, pool_, timings_);
    if (activation_hook_) report_attention_inputs(l, batch);
    scratch_.disabled_experts =
        l < disabled_experts_.size() && !disabled_experts_[l].empty() ? disabled_experts_[l].data() : nullptr;
    mlp_block(layer, dims, batch, scratch_, pool_, timings_);
    if (layer.is_moe && routing_hook_) report_routing(l, batch);
    if (activation_hook_) report_mlp_inputs(l, batch);
  }
}

void Session::forward_layers(std::span<float> residual, size_t first_layer, size_t last_layer) {
  const ModelDims& dims = model_.dims();
  const size_t H = dims.hidden, tokens = residual.size() / H;
  if (first_layer > last_layer || last_layer > dims.layers || residual.size() % H != 0)
    fail(ErrorKind::kUsage, "layers [{}, {}) over {} values: not a range of the model's {} layers on rows of {}",
         first_layer, last_layer, residual.size(), dims.layers, H);
  check_room(tokens);
  for (size_t first = 0; first < tokens; first += options_.prefill_chunk) {
    const Batch batch = start_batch(std::min(options_.prefill_chunk, tokens - first));
    float* rows = residual.data() + first * H;
    std::copy(rows, rows + batch.n * H, scratch_.x.data());
    run_layers(batch, first_layer, last_layer);
    std::copy(scratch_.x.data(), scratch_.x.data() + batch.n * H, rows);
    cache_.set_size(batch.first_position + batch.n);
  }
}

MemoryReport Session::memory() const {
  MemoryReport r;
  r.weights_mapped = model_.mapped_weight_bytes();
  r.weights_resident = model_.resident_weight_bytes();
  r.weights_copied = model_.copied_weight_bytes();
  r.kv_cache = cache_.bytes();
  r.scratch = scratch_.bytes();
  return r;
}

}  // namespace quantlab::model
