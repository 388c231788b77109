// The pieces of one decoder layer (model-spec.md §2.2-§2.6), each applied to a batch of n consecutive
// tokens at positions [first_position, first_position + n). Activations are row-major [n, width] f32.
// Batches of one token go through kernels::matvec, larger ones through kernels::matmul. Results do
// not depend on the thread count: work is split by output rows or by (token, head), and every sum is
// taken in a fixed order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "model/timings.h"

namespace quantlab::model {

// Working memory for batches of up to `tokens` tokens and a context of up to `context` positions.
// Queries that an attention task handles together: consecutive positions of one head in a batch
// (kernels::attend_queries), or the query heads of one KV group for a single token (attend_heads).
constexpr size_t kQueriesPerTask = 4;

struct Scratch {
  size_t tokens = 0, context = 0, workers = 0;
  std::vector<float> x;         // [n, H] residual stream
  std::vector<float> normed;    // [n, H]
  std::vector<float> q;         // [n, n_h * d]
  std::vector<float> attn;      // [n, n_h * d] attention output, heads concatenated
  std::vector<float> proj;      // [n, H] block output before the residual add
  std::vector<float> cos, sin;  // [n, d/2] RoPE tables of the batch's positions
  std::vector<float> scores;    // [workers, scores_per_worker()] attention probabilities
  std::vector<float> gate, up;  // [n, max(I, k * Im)]
  std::vector<float> router;    // [n, E]
  std::vector<int32_t> route_expert;  // [n, k] chosen experts per token
  std::vector<float> route_weight;    // [n, k] their mixing weights
  std::vector<float> gathered;        // [n * k, H] the (token, slot) rows, grouped by expert
  std::vector<float> expert_out;      // [n, k, H] each chosen expert's output per token
  // The current MoE layer's experts never to route to ([E], non-zero = disabled), or null: the session's
  // expert mask (Session::disable_experts), exactly what pruning those experts from the files does.
  const uint8_t* disabled_experts = nullptr;

  // Grows the buffers (never shrinks) to hold the given sizes.
  void ensure(const ModelDims& dims, size_t tokens, size_t context, size_t workers);
  // One attention task's probabilities: kQueriesPerTask queries over up to context + 4 positions.
  size_t scores_per_worker() const { return kQueriesPerTask * (context + kQueriesPerTask); }
  size_t bytes() const;
};

struct Batch {
  size_t n = 0;               // tokens in the batch
  size_t first_position = 0;  // absolute position of the first token
};

// y[i] = W x[i] (+ bias) for i < n; y is [n, W.rows].
void apply_linear(const Linear& l, const float* x, size_t n, float* y, ThreadPool& pool);

// Several linears of the same input (q/k/v, gate/up): for one token, one batched parallel section.
struct LinearOutput {
  const Linear* linear;
  float* y;
};
void apply_linears(std::initializer_list<LinearOutput> outputs, const float* x, size_t n, ThreadPool& pool);

// RMSNorm of each of the n rows of `in` (width = weight.size()) into `out`.
void rms_norm_rows(const float* in, const std::vector<float>& weight, size_t n, float eps, float* out);

// s.x += SelfAttention(RMSNorm(s.x)), appending the batch's keys and values to the cache (whose
// capacity must already cover the batch). s.cos/s.sin must hold the batch's RoPE tables.
void attention_block(const Layer& layer, size_t layer_index, const ModelDims& dims, const Batch& b,
                     KvCache& cache, Scratch& s, ThreadPool& pool, Timings& t);

// s.x += MLP(RMSNorm(s.x)): dense SwiGLU or the MoE block, as the layer says.
void mlp_block(const Layer& layer, const ModelDims& dims, const Batch& b, Scratch& s, ThreadPool& pool,
               Timings& t);

// Picks the top-k of softmax(router_logits) for one token (k = dims.experts_per_token), renormalised
// iff dims.norm_topk_prob; the softmax is taken in place over all E logits, in f32. Ties go to the
// lower expert index. Writes k expert indices and k mixing weights, highest probability first.
void route_token(float* router_logits, const ModelDims& dims, int32_t* experts, float* weights,
                 const uint8_t* disabled = nullptr);

// The expert of each row after a batch's (token, slot) entries are grouped by expert (the order in
// which the MoE block runs a batch's experts): rows of expert 0 first, token order within an expert.
std::vector<int32_t> experts_of_grouped_rows(std::span<const int32_t> route_expert, size_t experts);

}  // namespace quantlab::model
