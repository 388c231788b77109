#include "bench/plan_prediction.h"

#include <fmt/format.h>

#include <exception>

#include "core/error.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "quant/plan.h"

namespace quantlab::bench {

namespace {

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
    out.plan = to_prediction(src, quant::estimate_as_stored(src, runtime), runtime);
  } catch (const std::exception& e) {
    out.warning = fmt::format("the plan cannot describe this model: {}", e.what());
  }
  return out;
}

}  // namespace quantlab::bench
