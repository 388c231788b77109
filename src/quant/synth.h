// `quantlab synth`: a deterministic random checkpoint with the real config, tensor names and shapes of
// a published model (or any Qwen3 / Qwen3-MoE / Llama config), written like a Hugging Face checkpoint
// (config.json in the transformers v4 spelling, generation_config.json, sharded safetensors + index).
// Weights follow synth_weights.h; generation streams in chunks of rows on every thread of the pool,
// so memory stays at a few MB per thread and the bytes do not depend on the thread count.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "io/safetensors_writer.h"
#include "quant/plan.h"

namespace quantlab::quant {

// The presets `--like` accepts: "qwen3-0.6b", "qwen3-8b", "qwen3-30b-a3b", "llama-3.2-1b".
std::vector<std::string> synth_preset_names();

// The preset's config.json (values of model-spec.md §1.3), with num_hidden_layers (and the layer
// counts that follow it) replaced by `layers` when given and torch_dtype set to `dtype`.
// Throws Error(kUsage) for an unknown preset or a layer count < 1.
nlohmann::ordered_json synth_config(std::string_view like, std::optional<int64_t> layers, DType dtype);

// Keeps only the first `layers` layers of a config: num_hidden_layers, and max_window_layers,
// layer_types and mlp_only_layers when present, stay consistent. Throws Error(kUsage) for layers < 1.
void set_layer_count(nlohmann::ordered_json& config, int64_t layers);

// generation_config.json for a config (Qwen3: stop on <|im_end|> or <|endoftext|>, sampling defaults).
nlohmann::ordered_json synth_generation_config(const nlohmann::ordered_json& config);

struct SynthOptions {
  DType dtype = DType::kBF16;  // also written into config.json
  uint64_t seed = 0;
  bool overwrite = false;
  bool show_progress = true;
  uint64_t max_shard_bytes = io::kDefaultMaxShardBytes;
  // Set: write the checkpoint quantized as `quantlab quantize` with these options would (MLX affine,
  // round to nearest), generating and quantizing in one pass; the float checkpoint is never written.
  std::optional<PlanOptions> quantize;
};

struct SynthReport {
  size_t tensors = 0;
  uint64_t parameters = 0;
  uint64_t tensor_bytes = 0;
  std::vector<std::string> shards;
  double seconds = 0;
};

// Writes a random checkpoint for `config` into out_dir (atomically: nothing is left on failure). With
// options.quantize, the files are byte for byte those of synthesizing and then quantizing.
SynthReport synthesize_model(const nlohmann::ordered_json& config, const std::string& out_dir,
                             const SynthOptions& options, ThreadPool& pool);

}  // namespace quantlab::quant
