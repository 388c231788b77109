// The outputs of `quantlab experts` (issue 16): report.md (per layer the experts the task uses, how
// concentrated the routing is, tool vs direct replies, routing agreement of the compared models) and
// heatmap.svg (layers × experts, shade = share of the layer's tokens). experts.json is profile_json.
#pragma once

#include <string>

#include "analysis/expert_profile.h"
#include "analysis/expert_study.h"

namespace quantlab::analysis {

std::string expert_report_markdown(const ExpertProfile& profile);
std::string expert_heatmap_svg(const ExpertProfile& profile);

// `experts --study`: whether saliency ranks experts as leaving them out does (docs/experts.md).
nlohmann::ordered_json saliency_check_json(const SaliencyCheck& check, const AblationOutcome& full);
std::string saliency_check_markdown(const ExpertProfile& profile, const SaliencyCheck& check,
                                    const AblationOutcome& full);

}  // namespace quantlab::analysis
