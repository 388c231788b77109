// Sweep a fused model down the bit widths: quantize each width, benchmark it with the bench
// machinery, compare it with the baseline width (8 bits by default) under the decision rules, and find
// the lowest width that is minimum viable and the lowest that is optimal. With a base model, each
// width also gets the weight-only retention of the fine-tune (weight_retention.h).
//
// Layout of the output directory, which is also the resume state (an interrupted sweep picks up what
// is done; every file appears atomically):
//   models/q<b>-g<G>/        the quantized models (skipped when config.json is there)
//   results/q<b>-g<G>.json   one width's bench result and the settings it was measured with (reused
//                            only when the settings match)
// With keep ratios below 1 (MoE, issue 16), also experts.json (the fused model's expert profile on the
// suite), models/pruned-e<P>/ (the fused model with P % of its experts per layer, the least salient
// dropped) and models/q<b>-g<G>-e<P>/, results/q<b>-g<G>-e<P>.json for every width of it.
// With --target-bpw (issue 15): sensitivity.json (calibrated on the calibration suite, measured gains;
// made once) and models/mixed-<X>bpw-g<G>/ for each budget; with --recipe, models/recipe-<R>-g<G>/.
//   results.json, report.md, chart.svg   written at the end
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include "analysis/weight_retention.h"
#include "core/thread_pool.h"
#include "eval/report_schema.h"

namespace quantlab::analysis {

struct SweepOptions {
  std::string fused_dir;
  std::string base_dir;  // optional: weight-only retention per width
  std::vector<int> bits = {8, 7, 6, 5, 4, 3};
  std::vector<double> keep_ratios = {1.0};  // MoE: shares of the experts kept, each crossed with every width
  std::vector<double> target_bpw;           // mixed precision: one allocated plan per budget (bits per weight)
  std::vector<std::string> recipes;         // mlx-lm mixed recipes (quant/recipe.h)
  // Rounding methods besides round-to-nearest (issue 21: "gptq", "delta"): every unpruned width again,
  // rounded that way, from second moments calibrated once on the calibration suite.
  std::vector<std::string> methods;
  size_t calibration_tokens = 64;
  std::string calibration_suite;            // for the mixed plans; default: the bench suite (and its tools)
  int group_size = 64;
  int baseline_bits = 8;  // added to the widths when missing
  std::string out_dir;
  eval::BenchSettings bench;  // suite, tools, max_tokens, runs, threads, criteria (baseline is set here)
  eval::MachineInfo machine;  // recorded in results.json with the bench results
  std::string created_utc;
  bool show_progress = true;
  // Sweeps across machines (issue 17): shard `shard_index` of `shard_count` (1-based) measures only the
  // points whose position in the sweep's fixed order is shard_index - 1 modulo shard_count, and writes
  // no report (`sweep merge` does). merge_only: measure nothing; every point's result must be in
  // OUT/results (copied there from the shards).
  size_t shard_index = 1, shard_count = 1;
  bool merge_only = false;
};

// Measures one model (in its own process, as `bench` does). The CLI binds it to the bench runner.
using ModelBencher = std::function<eval::ModelResult(const std::string& name, const std::string& dir)>;

struct SweepWidth {
  int bits = 0;             // uniform width (0 for mixed plans and recipes)
  double keep_ratio = 1.0;  // share of the experts kept (1: unpruned)
  double target_bpw = 0;    // a mixed plan allocated to this many bits per weight (0: none)
  std::string recipe;       // an mlx-lm recipe (empty: none)
  std::string method = "rtn";  // the rounding (quant/rounding.h)
  std::string name;       // "8-bit", "8-bit, 50 % experts", "mixed 3.5 bpw", "mixed_3_6", "4-bit gptq"
  // A uniform width rounded to nearest: what "lowest width" answers and weight retention are about.
  bool uniform() const { return target_bpw == 0 && recipe.empty() && method == "rtn"; }
  std::string_view kind() const;  // "uniform", "pruned", "mixed", "recipe", or the rounding method ("gptq", "delta")
  std::string model_dir;
  bool quantized_now = false, benched_now = false;  // false: reused from an earlier run
  eval::ModelResult result;
  std::optional<RetentionSums> retention;     // with a base model
  std::optional<eval::Comparison> comparison;  // against the baseline; none for the baseline itself
};

struct SweepResult {
  std::vector<SweepWidth> widths;  // highest bits first
  std::string baseline;            // name of the baseline width
  std::optional<int> lowest_minimum_viable;  // lowest unpruned width whose verdict is at least minimum viable
  std::optional<int> lowest_optimal;
  // The configuration of any kind (uniform, pruned, mixed, recipe) with the fewest disk bytes whose
  // verdict is at least minimum viable / optimal: an index into widths.
  std::optional<size_t> smallest_minimum_viable, smallest_optimal;
  eval::BenchResults bench;  // every width's result and the comparisons, as `bench` writes them
  double seconds = 0;
};

SweepResult run_sweep(const SweepOptions& options, const ModelBencher& bench, ThreadPool& pool);

// The result file names (OUT/results/<key>.json) of every point of the sweep, in its fixed order.
std::vector<std::string> sweep_point_keys(const SweepOptions& options);

// The per-width settings that decide whether a stored result can be reused.
nlohmann::ordered_json sweep_settings_json(const SweepOptions& options);

}  // namespace quantlab::analysis
