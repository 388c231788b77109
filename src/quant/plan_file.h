// Explicit per-module quantization plans as files (`quantize --plan FILE.json`, the file `allocate`
// writes, and OUT/quantlab_plan.json beside every mixed-precision model quantlab writes):
//
//   {"format": "quantlab.plan/1", "bits": 4, "group_size": 64,
//    "modules": {"model.layers.0.self_attn.q_proj": {"bits": 8, "group_size": 32}, "lm_head": false, ...},
//    ... any other keys (recipe, predicted error and size) are kept for the reader}
//
// Every quantizable module the file names gets exactly that setting (`false`: kept in float); modules it
// does not name get the global bits/group_size with the family's router rule, as a uniform plan does.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "quant/plan.h"

namespace quantlab::quant {

inline constexpr const char* kPlanFormat = "quantlab.plan/1";

// Reads FILE into plan options (global setting plus one exact-match override per named module).
// Throws Error(kInvalidInput) naming the file and the field on malformed JSON or settings; a module
// the model does not have is refused when the plan is made (make_quant_plan), naming the file.
PlanOptions load_plan_file(const std::string& path);
// The same from a parsed plan; `where` names it in messages.
PlanOptions plan_options_from_json(const nlohmann::ordered_json& plan, const std::string& where);

// The plan as that file: the global setting, every module's own setting, and a summary.
nlohmann::ordered_json plan_file_json(const QuantPlan& plan);

}  // namespace quantlab::quant
