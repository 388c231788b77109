// A plan with a floor under the fine-tune (issue 15, the seed's case): every module a LoRA adapter
// changes keeps at least `floor_bits`, everything else gets the widest uniform width that still fits a
// size budget. Made from config.json and adapter_config.json alone (no weights), so it answers "can a
// 30B MoE meet the 25 % disk rule against 8-bit while the adapter's modules stay at >= 6 bits?" before
// anything is downloaded. Routers keep the family's rule (8 bits / group 64) unless the floor is higher.
#pragma once

#include <string>
#include <vector>

#include "io/adapter_targets.h"
#include "quant/size_plan.h"

namespace quantlab::quant {

struct FloorPlan {
  bool fits = false;            // some rest width meets the budget
  int rest_bits = 0;            // the widest that does (fits), or the narrowest tried (!fits: 2)
  int floor_bits = 0, group_size = 0;
  uint64_t budget_tensor_bytes = 0;
  std::vector<std::string> touched;  // the modules at >= floor_bits
  PlanOptions options;          // the plan: a global rest width and one override per touched module
  SizeEstimate estimate;        // at rest_bits
  uint64_t touched_bytes = 0;   // tensor bytes of the touched modules in the plan
};

// Error(kUsage) when the adapter touches none of the model's quantizable modules.
FloorPlan plan_with_floor(const PlanSource& source, const io::AdapterTargets& targets, int floor_bits, int group_size,
                          uint64_t budget_tensor_bytes, const RuntimeAssumptions& runtime);

}  // namespace quantlab::quant
