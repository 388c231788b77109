// The retention report: JSON (every number) and Markdown (what a person reads first: the overall
// curve, the layers where the fine-tune is lost first, and whether weights and outputs agree).
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

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

// One width rounded with one method (issue 21): its weight-space sums (the erased share is not
// measured for calibrated methods) and, with a suite, its distance from the fused model's outputs.
struct MethodRetention {
  std::string method;  // "rtn", "gptq", "delta"; "gptq+seq", "delta+seq" on sequential statistics
  int bits = 0;
  RetentionSums weights;
  std::optional<ModelDivergence> outputs;
};

// The "methods" array of retention.json and the side-by-side section of retention.md.
nlohmann::ordered_json methods_json(const std::vector<MethodRetention>& points);
std::string methods_markdown(const std::vector<MethodRetention>& points);

nlohmann::ordered_json retention_json(const RetentionInputs& in, const WeightRetention& w, const OutputRetention* o);
std::string retention_markdown(const RetentionInputs& in, const WeightRetention& w, const OutputRetention* o);

}  // namespace quantlab::analysis
