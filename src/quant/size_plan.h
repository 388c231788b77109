// `plan`: what each (bits, group size) would cost before anything is quantized. Needs only config.json
// and, where present, the safetensors headers (never the weights). Sizes come from make_quant_plan, so
// the tensor selection is exactly the one `quantize` applies; memory and decode-speed figures model
// the engine (model/): an f32 KV cache, the Scratch buffers of model/blocks.h, and decode reading each
// weight once per token (MoE: only the routed experts; the embedding: one row).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "quant/plan.h"

namespace quantlab::quant {

enum class PlanOrigin { kConfigOnly, kFloatHeaders, kQuantizedHeaders };
std::string_view plan_origin_name(PlanOrigin o);

// The float model a directory describes. For an MLX-quantized directory the float source is
// reconstructed (logical shapes, experts unstacked, the config's dtype), so that its plan is the plan
// of the float model it came from.
struct PlanSource {
  std::string dir;
  io::ModelConfig config;              // quantization block removed
  std::vector<SourceTensor> tensors;   // Hugging Face names and shapes
  PlanOrigin origin = PlanOrigin::kConfigOnly;
  std::optional<io::ModuleQuant> stored_quant;  // the directory's own quantization, if any
  // Its per-module config.json entries (mlx-lm's mixed recipes, `quantize --override`), as plan
  // overrides that match exactly that module: the stored model's plan is then the plan it was made with.
  std::vector<ModuleOverride> stored_overrides;
  uint64_t stored_tensor_bytes = 0;             // tensor bytes of its weight files (0: none)
};

// Throws Error naming the file when config.json or a header is malformed.
PlanSource load_plan_source(const std::string& dir);
// The source of a directory already opened (config.json and headers are not read again).
PlanSource plan_source_of(const io::ModelConfig& config, const io::ModelWeights& weights);
PlanSource plan_source_from_config(const io::ModelConfig& config);

// The same model with only `keep` experts in every MoE layer (issue 16: `plan --keep-experts`): the
// per-expert tensors of higher ids and the router rows dropped, num_experts and (capped)
// num_experts_per_tok rewritten, as `quantlab prune` writes it. Error(kUsage) for a dense model or a
// count outside [1, experts].
PlanSource with_experts_kept(const PlanSource& source, int64_t keep);

struct RuntimeAssumptions {
  int64_t context = 4096;       // positions held in the KV cache
  int64_t prefill_chunk = 512;  // tokens per prefill batch (model::SessionOptions' default)
  size_t threads = 1;           // one attention-score row per worker
};

struct SizeEstimate {
  int bits = 0, group_size = 0;  // a uniform setting (a mixed plan: its global block)
  std::string label;            // a mixed plan's name ("plan.json", "mixed_3_6"); empty for uniform settings
  uint64_t parameters = 0;      // logical weights of the written tensors
  uint64_t tensor_bytes = 0;    // exactly what quantize writes as tensor data
  uint64_t header_bytes = 0;    // safetensors length prefixes + JSON headers (estimated)
  uint64_t kv_cache_bytes = 0;  // f32 keys and values at the full context
  uint64_t scratch_bytes = 0;   // activations and logits
  uint64_t bytes_per_token = 0; // weight bytes read to decode one token

  uint64_t disk_bytes() const { return tensor_bytes + header_bytes; }
  uint64_t memory_bytes() const { return tensor_bytes + kv_cache_bytes + scratch_bytes; }
  double bits_per_weight() const { return parameters ? 8.0 * tensor_bytes / parameters : 0; }
};

// Throws Error(kUsage) for unsupported bits / group sizes (as quantize does).
SizeEstimate estimate_size(const PlanSource& source, int bits, int group_size, const RuntimeAssumptions& runtime);

// A per-module plan (`plan --plan FILE.json` or `--recipe NAME`): the plan options as quantize would
// apply them (quant/plan_file.h), labelled. Errors as make_quant_plan's (a module the model lacks...).
SizeEstimate estimate_mixed(const PlanSource& source, const PlanOptions& options, const std::string& label,
                            const RuntimeAssumptions& runtime);

// The directory's own storage as the engine maps it, for comparing a plan with a measurement
// (`bench`): an MLX-quantized source at its stored bits and group size with its per-module entries, a float
// source with every tensor kept in its stored dtype (bits and group_size then 0).
SizeEstimate estimate_as_stored(const PlanSource& source, const RuntimeAssumptions& runtime);

// Tensor bytes of the same model stored in float16 (tied lm_head dropped, as quantize drops it).
uint64_t float16_bytes(const PlanSource& source);

// Bytes of weights one decode step reads, per tensor of a plan (exposed for tests).
uint64_t decode_bytes_per_token(const io::ModelConfig& config, const QuantPlan& plan);

// One row of the plan table: an estimate and how it compares.
struct PlanRow {
  SizeEstimate estimate;
  double disk_smaller_pct = 0;    // than the baseline (tensor bytes)
  double memory_less_pct = 0;     // than the baseline
  double float16_smaller_pct = 0; // than the float16 model
  double speed_ratio = 0;         // baseline bytes per token / this row's (decode bound ratio)
  double tokens_per_s = 0;        // bandwidth bound; 0 when no bandwidth is known
};

PlanRow compare_to_baseline(const SizeEstimate& row, const SizeEstimate& baseline, uint64_t float16_bytes,
                            double bandwidth_gb_per_s);

struct QuantSetting {
  int bits = 8, group_size = 64;
};

struct PlanTable {
  SizeEstimate baseline;
  uint64_t float16_bytes = 0;
  std::vector<PlanRow> rows;  // in the order of `settings`
};

// Estimates every setting (in parallel: a plan of a 30B MoE model takes a fraction of a second) and
// compares each with the baseline. bandwidth_gb_per_s <= 0 leaves tokens_per_s at 0.
PlanTable make_plan_table(const PlanSource& source, const std::vector<QuantSetting>& settings,
                          QuantSetting baseline, const RuntimeAssumptions& runtime, double bandwidth_gb_per_s,
                          ThreadPool& pool);

}  // namespace quantlab::quant
