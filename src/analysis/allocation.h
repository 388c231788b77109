// Allocation (`quantlab allocate`): one candidate per tensor from a sensitivity file, minimising the
// summed error under a size budget. Method: each tensor's candidates are reduced to the lower convex
// hull of (bytes, error); every tensor starts at its smallest hull point and the budget is spent by
// greedy marginal gain — the step with the largest error drop per byte that still fits — which walks
// the Lagrangian frontier (optimal at every point where the budget falls between hull steps, within one
// step of optimal otherwise) in O(steps · log tensors). Stacked experts are one tensor, so a MoE layer's
// experts share one setting; q, k and v are separate tensors and may differ; routers have one candidate.
// With methods measured, the plan names every module's rounding method ("method": "gptq" or "rtn").
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "analysis/sensitivity.h"

namespace quantlab::analysis {

enum class Objective { kFinetune, kOutput, kBoth };
// "finetune", "output", "both"; Error(kUsage) otherwise.
Objective parse_objective(const std::string& text);
std::string_view objective_name(Objective o);

struct Allocation {
  std::vector<size_t> choice;   // candidate index per tensor (Sensitivity::tensors order)
  uint64_t bytes = 0;           // all tensor bytes, fixed ones included
  uint64_t parameters = 0;
  double error = 0;             // the objective's summed error
  double output_error = 0;
  double finetune_error = 0;
  double predicted_kl = 0;      // with measured gains: Σ gain · output error (module_gain.h)
  double bits_per_weight() const { return parameters ? 8.0 * static_cast<double>(bytes) / static_cast<double>(parameters) : 0; }
};

// All tensor bytes of the uniform setting bits/group (routers at their pinned setting): the reference
// of --smaller-than. Error(kUsage) when a tensor has no such candidate.
uint64_t uniform_bytes(const Sensitivity& s, int bits, int group_size);
uint64_t total_parameters(const Sensitivity& s);

// Error(kUsage) naming the budget and the smallest achievable size when the budget is below it, and
// for kFinetune/kBoth when the sensitivity was measured without a base. With methods measured
// (sensitivity --method), a tensor's candidates are every width × method and the allocation picks the
// pair: `methods` restricts it to candidates rounded with those (empty: all); a tensor that has no such
// candidate (a router, an embedding table) keeps its round-to-nearest ones; a method no tensor was
// measured with is Error(kUsage).
Allocation allocate(const Sensitivity& s, uint64_t max_bytes, Objective objective,
                    const std::vector<quant::RoundingMethod>& methods = {});

// The allocation as a quantlab.plan/1 file (quant/plan_file.h), with what it predicts.
nlohmann::ordered_json allocation_plan_json(const Sensitivity& s, const Allocation& a, Objective objective,
                                            const std::string& budget);

}  // namespace quantlab::analysis
