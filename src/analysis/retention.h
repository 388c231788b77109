// The retention workflow (`quantlab retention`): weight-level retention of a fine-tune at each width,
// and with a suite the output-level retention too (the adapter fused into a work area first when only
// an adapter is given), written to OUT/retention.json and OUT/retention.md atomically.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "analysis/output_retention.h"
#include "analysis/retention_report.h"
#include "analysis/weight_retention.h"
#include "core/thread_pool.h"

namespace quantlab::analysis {

struct RetentionOptions {
  std::string base_dir;
  std::string adapter_dir;  // exactly one of adapter_dir and fused_dir
  std::string fused_dir;
  std::vector<int> bits;
  int group_size = 64;
  std::string suite_path;   // empty: weights only
  std::string tools_path;
  size_t max_tokens = 32;
  std::string out_dir;
  // Rounding methods besides round-to-nearest (issue 21: "gptq", "delta"), each measured at every
  // width; their second moments are calibrated once on the fused model (calibration_suite, or the
  // suite) with calibration_tokens reply tokens per prompt.
  std::vector<std::string> methods;
  std::string calibration_suite;
  size_t calibration_tokens = 64;
  // Each width's statistics recorded sequentially for that width (analysis/sequential_calibration.h)
  // instead of once on the fused model; the methods are then reported as "gptq+seq", "delta+seq".
  bool sequential = false;
  bool keep_models = false;  // keep the quantized (and fused) models under OUT
  bool overwrite = false;
  bool show_progress = true;
};

struct RetentionRun {
  WeightRetention weights;
  std::optional<OutputRetention> outputs;
  std::vector<MethodRetention> methods;  // with options.methods: every width of rtn and of each method
  nlohmann::ordered_json json;  // what OUT/retention.json holds
};

// Throws Error(kUsage) for inconsistent options, and whatever the analyses throw; OUT then does not
// exist (or keeps its old contents without --overwrite).
RetentionRun run_retention(const RetentionOptions& options, ThreadPool& pool);

// The console summary: one row per width, where the fine-tune is lost first, and the report paths.
std::string retention_summary_text(const RetentionRun& run, const std::string& out_dir);

}  // namespace quantlab::analysis
