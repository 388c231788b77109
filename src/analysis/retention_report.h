// The retention report: JSON (every number) and Markdown (what a person reads first: the overall
// curve, the layers where the fine-tune is lost first, and whether weights and outputs agree).
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "analysis/output_retention.h"
#include "analysis/weight_retention.h"

namespace quantlab::analysis {

struct RetentionInputs {
  std::string base, fine_tune;  // the base directory and the adapter or fused directory
};

// Spearman rank correlation, across the widths present in both analyses, of the weight-only retention
// (the cosine; with `projection`, the kept share) and the output retention score over the reply. NaN
// when either side is constant or fewer than two widths are shared.
double weight_output_agreement(const WeightRetention& w, const OutputRetention& o, bool projection = false);

nlohmann::ordered_json retention_json(const RetentionInputs& in, const WeightRetention& w, const OutputRetention* o);
std::string retention_markdown(const RetentionInputs& in, const WeightRetention& w, const OutputRetention* o);

}  // namespace quantlab::analysis
