// One conversation with a loaded model: the KV cache, working memory and timings. Tokens are fed in
// order; a call with several tokens is a batched prefill (chunks through kernels::matmul), a call
// with one token a decode step (kernels::matvec). The thread pool is passed in, never global.
//
// Thread-safety: a Session is used by one thread at a time; the Model it reads may be shared.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/thread_pool.h"
#include "model/blocks.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "model/timings.h"

namespace quantlab::model {

struct SessionOptions {
  size_t max_context = 0;      // positions the cache may hold; 0 = max_position_embeddings
  size_t prefill_chunk = 512;  // largest batch of tokens pushed through the layers at once
};

struct MemoryReport {
  uint64_t weights_mapped = 0;    // stored weight bytes read in place from the mapped files
  uint64_t weights_resident = 0;  // of the mapped files, bytes resident in RAM now (mincore)
  uint64_t weights_copied = 0;    // f32 copies of small tensors (norms, biases)
  uint64_t kv_cache = 0;          // bytes allocated for keys and values
  uint64_t scratch = 0;           // activations, logits and other working buffers
};

// What one MoE layer did with a batch of tokens, as the routing hook sees it (expert profiling,
// routing drift between models). Spans point into the session's scratch: valid during the call only.
struct RoutingEvent {
  size_t layer = 0;
  size_t first_position = 0;   // absolute position of the batch's first token
  size_t tokens = 0;
  size_t experts = 0;          // E
  size_t experts_per_token = 0;  // k
  size_t hidden = 0;
  std::span<const int32_t> chosen;         // [tokens, k] expert ids, highest probability first
  std::span<const float> weights;          // [tokens, k] their mixing weights
  std::span<const float> probabilities;    // [tokens, E] softmax of the router logits
  std::span<const float> expert_outputs;   // [tokens, k, hidden] each chosen expert's output
};
using RoutingHook = std::function<void(const RoutingEvent&)>;

// Where a Linear's input comes from (calibration statistics): q/k/v share the attention input, gate/up
// (and a MoE layer's router and experts) the MLP input.
enum class LinearSite { kAttentionInput, kAttentionOutput, kMlpInput, kMlpDown, kExpertDown, kHeadInput };

// The rows a group of Linears multiplied in one forward pass. Pointers into the session's scratch:
// valid during the call only.
struct ActivationEvent {
  size_t layer = 0;  // the decoder layer; the number of layers for kHeadInput
  LinearSite site = LinearSite::kAttentionInput;
  size_t rows = 0;
  size_t cols = 0;
  const float* x = nullptr;  // [rows, cols]
  // kMlpInput of a MoE layer: [rows, k] the experts each token went to. kExpertDown: [rows] the
  // expert each row belongs to. Empty otherwise.
  std::span<const int32_t> experts;
};
using ActivationHook = std::function<void(const ActivationEvent&)>;

class Session {
 public:
  Session(const Model& model, ThreadPool& pool, SessionOptions options = {});

  // Runs `tokens` at the next positions, appending to the cache. Returns the logits of the last token
  // ([vocab]) or, with all_logits, of every token ([tokens.size(), vocab], row-major). Token ids are
  // checked against the vocabulary (Error kUsage).
  std::vector<float> forward(std::span<const int32_t> tokens, bool all_logits = false);

  // Runs only decoder layers [first_layer, last_layer) over `residual` ([n, hidden]: the residual stream
  // entering first_layer, replaced by the one leaving last_layer) at the n positions after the cached
  // ones, in the prefill chunks forward() uses, so the arithmetic is forward()'s. For layer-streamed
  // calibration (analysis/sequential_calibration.h), which runs one layer of every sequence at a time.
  // The activation hook sees these layers' inputs. Only these layers' keys and values are cached:
  // reset() before running other layers at the same positions.
  void forward_layers(std::span<float> residual, size_t first_layer, size_t last_layer);

  // Forgets every position (the cache memory is kept).
  void reset() { cache_.clear(); }
  size_t position() const { return cache_.size(); }
  size_t max_context() const { return cache_.max_positions(); }

  const Model& model() const { return model_; }
  ThreadPool& pool() { return pool_; }
  Timings& timings() { return timings_; }
  const Timings& timings() const { return timings_; }
  void reset_timings() { timings_ = Timings{}; }
  MemoryReport memory() const;
  // Called after every MoE layer of every forward pass (empty: none). Costs nothing when unset.
  void set_routing_hook(RoutingHook hook) { routing_hook_ = std::move(hook); }
  // Never routes layer `layer`'s tokens to `experts` (empty: none disabled): pruning them without
  // writing a model, for leave-one-out and ablation studies (analysis/expert_study.h). Error(kUsage)
  // for a dense layer, an expert out of range, or disabling so many that fewer than k remain.
  void disable_experts(size_t layer, const std::vector<int32_t>& experts);
  // Called with every Linear input of every forward pass (empty: none). Costs nothing when unset.
  void set_activation_hook(ActivationHook hook) { activation_hook_ = std::move(hook); }

 private:
  // One chunk of at most options_.prefill_chunk tokens; writes logits of rows [first_row, n) of the
  // chunk into `logits`.
  void forward_chunk(std::span<const int32_t> tokens, size_t first_logit_row, float* logits);
  // Error(kUsage) when `tokens` more positions would not fit the context.
  void check_room(size_t tokens) const;
  // The next n positions as a batch: cache and scratch sized for it, its rotary angles prepared.
  Batch start_batch(size_t n);
  // Layers [first, last) over the batch in scratch_.x (started by start_batch).
  void run_layers(const Batch& batch, size_t first, size_t last);
  void embed(std::span<const int32_t> tokens);
  void prepare_rope(size_t first_position, size_t n);
  void report_routing(size_t layer, const Batch& batch) const;
  void report_attention_inputs(size_t layer, const Batch& batch) const;
  void report_mlp_inputs(size_t layer, const Batch& batch);

  const Model& model_;
  ThreadPool& pool_;
  SessionOptions options_;
  KvCache cache_;
  Scratch scratch_;
  Timings timings_;
  RoutingHook routing_hook_;
  std::vector<std::vector<uint8_t>> disabled_experts_;  // [layer][expert]; empty rows: none
  ActivationHook activation_hook_;
  std::vector<int32_t> expert_of_row_;  // kExpertDown's per-row experts
};

}  // namespace quantlab::model
