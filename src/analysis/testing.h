// Helpers for the analysis layer's tests only (included by *_test.cc).
#pragma once

#include <optional>
#include <string>

#include "analysis/calibration.h"
#include "core/thread_pool.h"
#include "test_support.h"

namespace quantlab::analysis::test_helpers {

// `model` calibrated on `suite` (the bundled tools rendered in, 8 reply tokens): with second moments,
// experts' statistics as `experts` says; without, means only.
inline CalibrationStats calibrate_on(const std::string& model, const std::string& suite, ThreadPool& pool,
                                     std::optional<CalibrationOptions::ExpertStatistics> experts = std::nullopt) {
  CalibrationOptions o;
  o.model_dir = model;
  o.suite_path = suite;
  o.tools_path = testing::tool_calling::kTools;
  o.max_tokens = 8;
  o.show_progress = false;
  o.second_moments = experts.has_value();
  if (experts) o.expert_statistics = *experts;
  return calibrate(o, pool);
}

}  // namespace quantlab::analysis::test_helpers
