// Calibration statistics (`quantlab calibrate`): the engine runs the suite's prompts and the model's own
// greedy replies (and/or plain text) and records, for the input of every Linear of the quantization
// plan, the mean of x² per input channel and the tokens seen — each expert of a MoE layer separately.
// That is an importance matrix over the user's own distribution; `sensitivity` weights each column's
// rounding error with it. Memory: one double per input channel per module (per expert), independent
// of the number of tokens; weights stay mapped.
//
// File (stats.safetensors): for each module M, tensor "M" F32 [cols] (or [experts, cols] for stacked
// experts) = mean x², and "M.tokens" F32 [1] (or [experts]); with second moments also "M.xxt" F32
// [cols, cols] (or [experts, cols, cols]) = E[x xᵀ] — or, for stacked experts whose matrices would be too
// large (Qwen3-30B-A3B: 128 × 2048² per module and layer), the routed inputs themselves: "M.inputs" BF16
// [rows, cols] and "M.routes" I32 [rows, k] (the experts each row went to), which GPTQ uses in low-rank
// form (quant/gptq_low_rank.h); metadata format "quantlab.stats/1",
// model_type, hidden_size, num_hidden_layers, vocab_size, num_experts, tokens.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "io/model_config.h"
#include "quant/rounding.h"

namespace quantlab::analysis {

struct CalibrationOptions {
  std::string model_dir;
  std::string suite_path;  // prompts (with --tools rendered in) + the model's greedy replies
  std::string tools_path;
  std::string text_path;   // plain text, in chunks of text_chunk tokens
  size_t max_tokens = 64;  // reply length per prompt
  size_t text_chunk = 256;
  bool show_progress = true;
  // Also record the full second-moment matrix E[x xᵀ] of every Linear's input (what GPTQ rounding
  // needs, quant/gptq.h): cols² doubles per module (per expert), so only for models where that fits.
  bool second_moments = false;
  // For stacked experts with second moments: keep the routed inputs instead of E[x xᵀ] per expert —
  // always (kInputs), never (kMoments), or when a module's matrices would exceed 256 MiB (kAuto).
  enum class ExpertStatistics { kAuto, kMoments, kInputs } expert_statistics = ExpertStatistics::kAuto;
};

struct ModuleStats {
  size_t experts = 1;            // rows of the statistics: 1, or the experts of a stacked module
  size_t cols = 0;
  std::vector<double> mean_x2;   // [experts, cols]
  std::vector<double> tokens;    // [experts]
  std::vector<double> xxt;       // [experts, cols, cols] = E[x xᵀ], when second moments were recorded
  std::shared_ptr<quant::RoutedInputs> inputs;  // instead of xxt for stacked experts (see above)
};

struct CalibrationStats {
  std::string model_type;
  int64_t hidden_size = 0, num_hidden_layers = 0, vocab_size = 0, num_experts = 0;
  uint64_t tokens = 0;                         // tokens run through the model
  std::map<std::string, ModuleStats> modules;  // by module path (the plan's names: switch_mlp for experts)
};

// Runs the model (Error(kUsage) when neither a suite nor text is given).
CalibrationStats calibrate(const CalibrationOptions& options, ThreadPool& pool);

void write_stats(const CalibrationStats& stats, const std::string& path);
// Throws Error(kInvalidInput) naming the file when it is not a statistics file.
CalibrationStats read_stats(const std::string& path);
// The statistics GPTQ/delta rounding reads (quant::RoundingOptions::moments and ::routed_inputs), moved
// out of `stats`, the moments rounded to float32 as a statistics file stores them, so calibrating inline
// and through `calibrate --second-moments` + `--stats` give the same files. Modules with identical
// routed inputs (gate_proj, up_proj) get one shared object. False when there were none.
bool take_rounding_statistics(CalibrationStats& stats, quant::RoundingOptions& rounding);

// The statistics of two runs on disjoint inputs as one run over both records them, up to the order of
// the sums: token counts added, means and second moments weighted by each module's (expert's) tokens,
// routed inputs concatenated. Throws Error(kInvalidInput) naming the module when the two do not match
// (another model, or moments in one and routed inputs in the other).
CalibrationStats merge_stats(CalibrationStats a, const CalibrationStats& b);

// Throws Error(kInvalidInput) naming both when the statistics were recorded on another model.
void check_stats_match(const CalibrationStats& stats, const io::ModelConfig& config, const std::string& stats_path);

}  // namespace quantlab::analysis
