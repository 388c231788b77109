#include "model/blocks.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/kernels.h"

namespace quantlab::model {

namespace {

// Exactly n elements of capacity: resize alone may double it, and memory reports count capacity.
template <typename T>
void grow(std::vector<T>& v, size_t n) {
  if (v.size() >= n) return;
  v.reserve(n);
  v.resize(n);
}

template <typename T>
size_t byte_size(const std::vector<T>& v) {
  return v.capacity() * sizeof(T);
}

void apply_matrix(const kernels::MatrixView& w, const float* x, size_t n, float* y, ThreadPool& pool) {
  if (n == 1) kernels::matvec(w, x, y, pool);
  else kernels::matmul(w, x, n, y, pool);
}

// Per-head RMSNorm (Qwen3's q_norm / k_norm, before RoPE) and rotate-half RoPE, for `heads` heads of
// each of the n rows of `x`, whose rows are `stride` floats apart.
void norm_and_rotate(float* x, size_t n, size_t stride, size_t heads, const std::vector<float>& norm,
                     const ModelDims& dims, const Scratch& s) {
  const size_t d = dims.head_dim, half = d / 2;
  for (size_t i = 0; i < n; ++i) {
    for (size_t h = 0; h < heads; ++h) {
      float* head = x + i * stride + h * d;
      if (!norm.empty()) kernels::rms_norm(head, norm.data(), d, dims.rms_eps, head);
      kernels::rope_neox(head, d, s.cos.data() + i * half, s.sin.data() + i * half);
    }
  }
}

}  // namespace

void Scratch::ensure(const ModelDims& dims, size_t n, size_t ctx, size_t nworkers) {
  tokens = std::max(tokens, n);
  context = std::max(context, ctx);
  workers = std::max(workers, nworkers);
  const size_t H = dims.hidden, k = dims.experts_per_token;
  grow(x, tokens * H);
  grow(normed, tokens * H);
  grow(q, tokens * dims.q_dim());
  grow(attn, tokens * dims.q_dim());
  grow(proj, tokens * H);
  grow(cos, tokens * dims.head_dim / 2);
  grow(sin, tokens * dims.head_dim / 2);
  grow(scores, workers * scores_per_worker());
  // MoE runs all (token, slot) rows of a batch side by side: k * moe_intermediate per token.
  const size_t mlp_width = std::max(tokens * dims.intermediate, tokens * k * dims.moe_intermediate);
  grow(gate, mlp_width);
  grow(up, mlp_width);
  if (dims.experts == 0) return;
  grow(router, tokens * dims.experts);
  grow(route_expert, tokens * k);
  grow(route_weight, tokens * k);
  grow(gathered, tokens * k * H);
  grow(expert_out, tokens * k * H);
}

size_t Scratch::bytes() const {
  return byte_size(x) + byte_size(normed) + byte_size(q) + byte_size(attn) + byte_size(proj) +
         byte_size(cos) + byte_size(sin) + byte_size(scores) + byte_size(gate) + byte_size(up) +
         byte_size(router) + byte_size(route_expert) + byte_size(route_weight) + byte_size(gathered) +
         byte_size(expert_out);
}

void add_bias(const Linear& l, size_t n, float* y) {
  if (l.bias.empty()) return;
  for (size_t i = 0; i < n; ++i) kernels::axpy(1.0f, l.bias.data(), y + i * l.bias.size(), l.bias.size());
}

void apply_linear(const Linear& l, const float* x, size_t n, float* y, ThreadPool& pool) {
  apply_matrix(l.weight, x, n, y, pool);
  add_bias(l, n, y);
}

void apply_linears(std::initializer_list<LinearOutput> outputs, const float* x, size_t n, ThreadPool& pool) {
  std::vector<kernels::MatmulJob> jobs;
  jobs.reserve(outputs.size());
  for (const LinearOutput& o : outputs) jobs.push_back({o.linear->weight, x, n, o.y});
  kernels::matmul_batch(jobs.data(), jobs.size(), pool);
  for (const LinearOutput& o : outputs) add_bias(*o.linear, n, o.y);
}

void rms_norm_rows(const float* in, const std::vector<float>& weight, size_t n, float eps, float* out) {
  const size_t width = weight.size();
  for (size_t i = 0; i < n; ++i) kernels::rms_norm(in + i * width, weight.data(), width, eps, out + i * width);
}

namespace {

// One token's attention: tasks are (KV head, block of up to 4 of the query heads that share it), so
// each cache row is read once per block rather than once per head (decode reads the whole cache).
void attend_one_token(const ModelDims& dims, const Batch& b, const float* keys, const float* values, Scratch& s,
                      ThreadPool& pool) {
  const size_t d = dims.head_dim, group = dims.heads / dims.kv_heads;
  const size_t blocks = (group + kQueriesPerTask - 1) / kQueriesPerTask;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  pool.parallel_for(dims.kv_heads * blocks, 1, [&](size_t begin, size_t end, size_t worker) {
    float* scores = s.scores.data() + worker * s.scores_per_worker();
    for (size_t task = begin; task < end; ++task) {
      const size_t g = task / blocks, h = g * group + task % blocks * kQueriesPerTask;
      const size_t count = std::min(kQueriesPerTask, (g + 1) * group - h);
      kernels::attend_heads(s.q.data() + h * d, d, count, keys + g * d, values + g * d, b.first_position + 1, d,
                            dims.kv_dim(), scale, scores, s.attn.data() + h * d, d);
    }
  }, 16);
}

// A batch's attention: tasks are (block of up to 4 consecutive queries, head), later blocks (longer
// contexts) last; the kernel gives each query what it gets alone, so neither blocks nor threads
// change a result.
void attend_batch(const ModelDims& dims, const Batch& b, const float* keys, const float* values, Scratch& s,
                  ThreadPool& pool) {
  const size_t n = b.n, d = dims.head_dim, group = dims.heads / dims.kv_heads, q_dim = dims.q_dim();
  const size_t blocks = (n + kQueriesPerTask - 1) / kQueriesPerTask;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  pool.parallel_for(blocks * dims.heads, 1, [&](size_t begin, size_t end, size_t worker) {
    float* scores = s.scores.data() + worker * s.scores_per_worker();
    for (size_t task = begin; task < end; ++task) {
      const size_t i = task / dims.heads * kQueriesPerTask, h = task % dims.heads, g = h / group;
      const size_t count = std::min(kQueriesPerTask, n - i);
      // Causal: the query at batch row i sees positions 0 .. first_position + i.
      kernels::attend_queries(s.q.data() + i * q_dim + h * d, q_dim, count, keys + g * d, values + g * d,
                              b.first_position + i + 1, d, dims.kv_dim(), scale, scores,
                              s.attn.data() + i * q_dim + h * d, q_dim);
    }
  }, 16);
}

}  // namespace

void attention_block(const Layer& layer, size_t layer_index, const ModelDims& dims, const Batch& b,
                     KvCache& cache, Scratch& s, ThreadPool& pool, Timings& t) {
  const size_t n = b.n, H = dims.hidden, q_dim = dims.q_dim(), kv_dim = dims.kv_dim();
  const Attention& w = layer.attention;
  {
    ScopedPhase phase(t, Phase::kNorms);
    rms_norm_rows(s.x.data(), layer.input_norm, n, dims.rms_eps, s.normed.data());
  }
  // Keys and values go straight into their cache rows.
  float* keys = cache.keys(layer_index) + b.first_position * kv_dim;
  float* values = cache.values(layer_index) + b.first_position * kv_dim;
  {
    ScopedPhase phase(t, Phase::kAttentionProj);
    apply_linears({{&w.q, s.q.data()}, {&w.k, keys}, {&w.v, values}}, s.normed.data(), n, pool);
  }
  {
    ScopedPhase phase(t, Phase::kQkNormRope);
    norm_and_rotate(s.q.data(), n, q_dim, dims.heads, w.q_norm, dims, s);
    norm_and_rotate(keys, n, kv_dim, dims.kv_heads, w.k_norm, dims, s);
  }
  {
    ScopedPhase phase(t, Phase::kAttention);
    const float* all_keys = cache.keys(layer_index);
    const float* all_values = cache.values(layer_index);
    if (n == 1) attend_one_token(dims, b, all_keys, all_values, s, pool);
    else attend_batch(dims, b, all_keys, all_values, s, pool);
  }
  {
    ScopedPhase phase(t, Phase::kAttentionProj);
    apply_linear(w.o, s.attn.data(), n, s.proj.data(), pool);
  }
  kernels::axpy(1.0f, s.proj.data(), s.x.data(), n * H);
}

// The top-k experts by router logit. With norm_topk_prob the weights are the softmax of the chosen
// logits alone (equal to renormalising the full softmax, as transformers does, up to rounding): they
// then do not depend on the experts not chosen, so pruning experts a token never picks leaves its
// output bit-identical (quantlab prune). Experts `disabled` (when given) are never chosen, which is
// exactly pruning them. `logits` becomes the full softmax, which the routing hook reports.
void route_token(float* logits, const ModelDims& dims, int32_t* experts, float* weights, const uint8_t* disabled) {
  const size_t E = dims.experts, k = dims.experts_per_token;
  for (size_t slot = 0; slot < k; ++slot) {
    size_t best = E;
    for (size_t e = 0; e < E; ++e) {
      if (disabled && disabled[e]) continue;
      if (std::find(experts, experts + slot, static_cast<int32_t>(e)) != experts + slot) continue;
      if (best == E || logits[e] > logits[best]) best = e;
    }
    experts[slot] = static_cast<int32_t>(best);
  }
  if (dims.norm_topk_prob) {
    const float top = logits[experts[0]];
    float total = 0;
    for (size_t slot = 0; slot < k; ++slot) total += weights[slot] = std::exp(logits[experts[slot]] - top);
    for (size_t slot = 0; slot < k; ++slot) weights[slot] /= total;
  }
  kernels::softmax(logits, E);
  if (!dims.norm_topk_prob)
    for (size_t slot = 0; slot < k; ++slot) weights[slot] = logits[experts[slot]];
}

namespace {

void dense_mlp(const DenseMlp& m, const ModelDims& dims, size_t n, Scratch& s, ThreadPool& pool) {
  const size_t I = dims.intermediate;
  apply_linears({{&m.gate, s.gate.data()}, {&m.up, s.up.data()}}, s.normed.data(), n, pool);
  kernels::silu_mul(s.gate.data(), s.up.data(), n * I, s.gate.data());
  apply_linear(m.down, s.gate.data(), n, s.proj.data(), pool);
}

// A batch's (token * k + slot) entries grouped by expert, in token order within an expert (a counting
// sort): expert e's rows are [first[e], first[e + 1]), and grouped row r holds entry slot_of_row[r].
struct ExpertGroups {
  std::vector<size_t> first;
  std::vector<size_t> slot_of_row;
};

ExpertGroups group_by_expert(const int32_t* route_expert, size_t entries, size_t experts) {
  ExpertGroups g;
  g.first.assign(experts + 1, 0);
  for (size_t j = 0; j < entries; ++j) g.first[static_cast<size_t>(route_expert[j]) + 1]++;
  for (size_t e = 0; e < experts; ++e) g.first[e + 1] += g.first[e];
  g.slot_of_row.resize(entries);
  std::vector<size_t> next(g.first.begin(), g.first.end() - 1);
  for (size_t j = 0; j < entries; ++j) g.slot_of_row[next[static_cast<size_t>(route_expert[j])]++] = j;
  return g;
}

// Runs every expert on the tokens routed to it: the (token, slot) rows are grouped by expert in
// `gathered`, so each expert multiplies one contiguous batch and every decoded weight tile is reused
// across its tokens; all experts' gate/up products form one batch, their down products another. Row
// (token * k + slot) of expert_out receives each result.
void experts_by_batch(const MoeMlp& m, const ModelDims& dims, size_t n, Scratch& s, ThreadPool& pool) {
  const size_t H = dims.hidden, E = dims.experts, k = dims.experts_per_token, Im = dims.moe_intermediate;
  const size_t rows = n * k;
  const ExpertGroups groups = group_by_expert(s.route_expert.data(), rows, E);
  const std::vector<size_t>& first = groups.first;
  for (size_t r = 0; r < rows; ++r)
    std::copy_n(s.normed.data() + (groups.slot_of_row[r] / k) * H, H, s.gathered.data() + r * H);
  // The down products land in `gathered` (its inputs are consumed by then), then go to their slots' rows.
  std::vector<kernels::MatmulJob> gate_up, down;
  for (size_t e = 0; e < E; ++e) {
    const size_t count = first[e + 1] - first[e];
    if (count == 0) continue;
    const float* x = s.gathered.data() + first[e] * H;
    gate_up.push_back({m.gate[e], x, count, s.gate.data() + first[e] * Im});
    gate_up.push_back({m.up[e], x, count, s.up.data() + first[e] * Im});
    down.push_back({m.down[e], s.gate.data() + first[e] * Im, count, s.gathered.data() + first[e] * H});
  }
  kernels::matmul_batch(gate_up.data(), gate_up.size(), pool);
  kernels::silu_mul(s.gate.data(), s.up.data(), rows * Im, s.gate.data());
  kernels::matmul_batch(down.data(), down.size(), pool);
  for (size_t r = 0; r < rows; ++r)
    std::copy_n(s.gathered.data() + r * H, H, s.expert_out.data() + groups.slot_of_row[r] * H);
}

// One token (decode): the k active experts' gate and up projections run as one batched parallel
// section, then their down projections as another, instead of 3k small sections. Each product is
// bit-identical to experts_by_batch's.
void active_experts_one_token(const MoeMlp& m, const ModelDims& dims, Scratch& s, ThreadPool& pool) {
  const size_t H = dims.hidden, k = dims.experts_per_token, Im = dims.moe_intermediate;
  std::vector<kernels::MatvecJob> jobs;
  jobs.reserve(2 * k);
  for (size_t slot = 0; slot < k; ++slot) {
    const auto e = static_cast<size_t>(s.route_expert[slot]);
    jobs.push_back({m.gate[e], s.normed.data(), s.gate.data() + slot * Im});
    jobs.push_back({m.up[e], s.normed.data(), s.up.data() + slot * Im});
  }
  kernels::matvec_batch(jobs.data(), jobs.size(), pool);
  kernels::silu_mul(s.gate.data(), s.up.data(), k * Im, s.gate.data());
  jobs.clear();
  for (size_t slot = 0; slot < k; ++slot) {
    const auto e = static_cast<size_t>(s.route_expert[slot]);
    jobs.push_back({m.down[e], s.gate.data() + slot * Im, s.expert_out.data() + slot * H});
  }
  kernels::matvec_batch(jobs.data(), jobs.size(), pool);
}

// Routes each token to its k experts, runs them, then mixes each token's k outputs in slot order.
void moe_mlp(const MoeMlp& m, const ModelDims& dims, size_t n, Scratch& s, ThreadPool& pool, Timings& t) {
  const size_t H = dims.hidden, E = dims.experts, k = dims.experts_per_token;
  {
    ScopedPhase phase(t, Phase::kRouter);
    apply_linear(m.router, s.normed.data(), n, s.router.data(), pool);
    for (size_t i = 0; i < n; ++i)
      route_token(s.router.data() + i * E, dims, s.route_expert.data() + i * k, s.route_weight.data() + i * k,
                  s.disabled_experts);
  }
  ScopedPhase phase(t, Phase::kExperts);
  if (n == 1) {
    active_experts_one_token(m, dims, s, pool);
  } else {
    experts_by_batch(m, dims, n, s, pool);
  }
  std::fill_n(s.proj.data(), n * H, 0.0f);
  for (size_t i = 0; i < n; ++i)
    for (size_t slot = 0; slot < k; ++slot)
      kernels::axpy(s.route_weight[i * k + slot], s.expert_out.data() + (i * k + slot) * H, s.proj.data() + i * H, H);
}

}  // namespace

std::vector<int32_t> experts_of_grouped_rows(std::span<const int32_t> route_expert, size_t experts) {
  const ExpertGroups g = group_by_expert(route_expert.data(), route_expert.size(), experts);
  std::vector<int32_t> out(route_expert.size());
  for (size_t r = 0; r < out.size(); ++r) out[r] = route_expert[g.slot_of_row[r]];
  return out;
}

void mlp_block(const Layer& layer, const ModelDims& dims, const Batch& b, Scratch& s, ThreadPool& pool,
               Timings& t) {
  {
    ScopedPhase phase(t, Phase::kNorms);
    rms_norm_rows(s.x.data(), layer.post_attention_norm, b.n, dims.rms_eps, s.normed.data());
  }
  if (layer.is_moe) {
    moe_mlp(layer.moe, dims, b.n, s, pool, t);
  } else {
    ScopedPhase phase(t, Phase::kMlp);
    dense_mlp(layer.mlp, dims, b.n, s, pool);
  }
  kernels::axpy(1.0f, s.proj.data(), s.x.data(), b.n * dims.hidden);
}

}  // namespace quantlab::model
