// The accumulator behind calibration statistics (analysis/calibration.h): sums of x² per module and
// input channel (and E[x xᵀ] or the routed inputs themselves, with second moments) as the engine reports
// each Linear's input. Plain calibration feeds it every event of a forward pass; layer-streamed
// calibration (analysis/sequential_calibration.h) feeds it one layer's events at a time.
#pragma once

#include <map>
#include <span>
#include <string>
#include <vector>

#include "analysis/calibration.h"
#include "io/architecture.h"
#include "model/session.h"

namespace quantlab::analysis {

class StatsCollector {
 public:
  // The registry's names of every layer, built once (events arrive per layer per forward pass).
  StatsCollector(const io::ModelConfig& config, bool second_moments, CalibrationOptions::ExpertStatistics experts);

  void on_activation(const model::ActivationEvent& e);

  // The sums so far (not yet divided by the token counts: finish_means does that), and an empty collector.
  std::map<std::string, ModuleStats> take() { return std::move(sums_); }

 private:
  void add(const std::string& path, const model::ActivationEvent& e, size_t experts, std::span<const int32_t> experts_of);
  static void accumulate(ModuleStats& m, size_t expert, const float* x);
  bool keeps_inputs(size_t experts, size_t cols, size_t route_width) const;
  static void keep_inputs(quant::RoutedInputs& in, const model::ActivationEvent& e, std::span<const int32_t> routes);
  static void accumulate_moments(ModuleStats& m, size_t expert, const model::ActivationEvent& e,
                                 const std::vector<size_t>& rows);

  // 8 GiB: a third of this project's 24 GiB development machines, the weights stay mapped beside it.
  static constexpr size_t kSecondMomentBudget = size_t{8} << 30;
  const io::ModelConfig& config_;
  bool second_moments_;
  CalibrationOptions::ExpertStatistics expert_statistics_;
  size_t second_moment_bytes_ = 0;
  std::vector<io::LayerSpec> layers_;
  std::map<std::string, ModuleStats> sums_;
};

// Statistics of no tokens yet, describing the model they are recorded on.
CalibrationStats empty_stats(const io::ModelConfig& config);

// Divides the sums of every module by its (expert's) token count and mirrors E[x xᵀ]'s upper triangle.
void finish_means(std::map<std::string, ModuleStats>& modules);

}  // namespace quantlab::analysis
