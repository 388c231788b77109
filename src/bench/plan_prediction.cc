#include "bench/plan_prediction.h"

#include <fmt/format.h>

#include <exception>
#include <map>

#include "core/error.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "quant/plan.h"

namespace quantlab::bench {

namespace {

using PerModule = std::map<std::string, std::optional<io::ModuleQuant>>;

// Entries equal to the global setting say nothing: drop them before comparing two configs.
PerModule overrides_only(const io::QuantizationConfig& q) {
  PerModule out;
  for (const auto& [module, setting] : q.per_module)
    if (setting != q.global) out.emplace(module, setting);
  return out;
}

// The plan predicts one global setting plus its own per-module rules (the Qwen3-MoE router at 8 bits).
// A directory quantized with other per-module widths (mlx-lm's mixed recipes) is not that model.
void require_uniform(const quant::PlanSource& src, const io::ModelConfig& stored) {
  if (!src.stored_quant) return;
  if (!stored.quantization) return;
  quant::PlanOptions options;
  options.bits = src.stored_quant->bits;
  options.group_size = src.stored_quant->group_size;
  const quant::QuantPlan plan = quant::make_quant_plan(src.config, src.tensors, options);
  const PerModule have = overrides_only(*stored.quantization), want = overrides_only(plan.quantization);
  if (have == want) return;
  size_t differing = 0;
  std::string example;
  for (const auto& [module, setting] : have)
    if (auto it = want.find(module); it == want.end() || it->second != setting) {
      if (example.empty()) example = module;
      ++differing;
    }
  fail_input("{}: {} module(s) quantized with their own settings (e.g. '{}'); the plan predicts uniform "
             "{}-bit g{} only", stored.path, std::max<size_t>(differing, 1), example.empty() ? "?" : example,
             options.bits, options.group_size);
}

eval::PlanPrediction to_prediction(const quant::PlanSource& src, const quant::SizeEstimate& e,
                                   const quant::RuntimeAssumptions& runtime) {
  eval::PlanPrediction p;
  p.origin = std::string(quant::plan_origin_name(src.origin));
  p.bits = e.bits;
  p.group_size = e.group_size;
  p.context = static_cast<uint64_t>(runtime.context);
  p.prefill_batch = static_cast<uint64_t>(std::min(runtime.prefill_chunk, runtime.context));
  p.threads = runtime.threads;
  p.tensor_bytes = e.tensor_bytes;
  p.header_bytes = e.header_bytes;
  p.kv_cache_bytes = e.kv_cache_bytes;
  p.scratch_bytes = e.scratch_bytes;
  p.bytes_per_token = e.bytes_per_token;
  return p;
}

}  // namespace

PlanOutcome predict_as_benched(const std::string& model_dir, const quant::RuntimeAssumptions& runtime) {
  PlanOutcome out;
  try {
    const io::ModelConfig config = io::load_model_config(model_dir);
    const io::ModelWeights weights = io::ModelWeights::open(model_dir);
    return predict_as_benched(config, weights, runtime);
  } catch (const std::exception& e) {
    out.warning = fmt::format("the plan cannot describe this model: {}", e.what());
  }
  return out;
}

PlanOutcome predict_as_benched(const io::ModelConfig& config, const io::ModelWeights& weights,
                               const quant::RuntimeAssumptions& runtime) {
  PlanOutcome out;
  try {
    const quant::PlanSource src = quant::plan_source_of(config, weights);
    require_uniform(src, config);
    out.plan = to_prediction(src, quant::estimate_as_stored(src, runtime), runtime);
  } catch (const std::exception& e) {
    out.warning = fmt::format("the plan cannot describe this model: {}", e.what());
  }
  return out;
}

}  // namespace quantlab::bench
