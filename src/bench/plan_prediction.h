// The plan's prediction for a model directory as a bench worker ran it (issue 7): `quantlab plan`'s
// size, memory and bytes-per-token model (quant::estimate_as_stored) evaluated at the worker's own
// runtime, so that bench can show each prediction next to its measurement. A plan that cannot be
// computed is a warning, never a failed model.
#pragma once

#include <optional>
#include <string>

#include "eval/report_schema.h"
#include "quant/size_plan.h"

namespace quantlab::bench {

struct PlanOutcome {
  std::optional<eval::PlanPrediction> plan;
  std::string warning;  // why there is no plan
};

// Never throws: a malformed directory, or one the uniform plan cannot describe (per-module bit widths
// other than the plan's own rules), gives no plan and a warning naming the reason.
PlanOutcome predict_as_benched(const std::string& model_dir, const quant::RuntimeAssumptions& runtime);
// The same for a directory already opened (a bench worker's: config and headers are not read again).
PlanOutcome predict_as_benched(const io::ModelConfig& config, const io::ModelWeights& weights,
                               const quant::RuntimeAssumptions& runtime);

}  // namespace quantlab::bench
