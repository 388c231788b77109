// The results of `quantlab bench` as data: what each model's worker process measured, the settings of
// the run, and the comparisons against the baseline. RESULTS.json is exactly to_json() of
// BenchResults; docs/bench-schema.md documents every field. The worker hands its ModelResult to the
// parent through the same JSON, so the schema is exercised on every run.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "eval/criteria.h"
#include "eval/scoring.h"
#include "eval/stats.h"
#include "eval/verdict.h"

namespace quantlab::eval {

// Version 2 added machine.bandwidth_* and models[].plan / plan_warning; version 3 the causes of failed
// checks, comparisons[].problems, suite_need and options. The reader still accepts versions 1 and 2
// (they read as having no plan and no measured bandwidth, and no causes or options).
inline constexpr std::string_view kBenchSchemaId = "quantlab.bench/3";
inline constexpr std::string_view kBenchSchemaIdV2 = "quantlab.bench/2";
inline constexpr std::string_view kBenchSchemaIdV1 = "quantlab.bench/1";

struct QueryResult {
  std::string id;
  size_t line = 0;
  bool expect_tool = false;
  std::optional<std::string> expected_tool;
  QueryScore score;
  std::optional<double> first_token_margin;  // <tool_call> logit minus the best other (null: no such token)
  std::string best_other_token;              // the best other first token, as stored in the vocabulary
  size_t prompt_tokens = 0;
  size_t generated_tokens = 0;  // the stop token included
  std::string stop_reason;      // stop_token, max_tokens, context_full
  double seconds = 0;           // prefill + decode of this query in the first run
  std::string reply;            // the raw reply text, stop token excluded
};

// One pass over the whole suite.
struct SpeedRun {
  size_t prefill_tokens = 0;
  double prefill_seconds = 0;
  size_t decode_tokens = 0;
  double decode_seconds = 0;
  double mean_query_seconds = 0;
  double median_query_seconds = 0;

  double prefill_tps() const { return prefill_seconds > 0 ? prefill_tokens / prefill_seconds : 0.0; }
  double decode_tps() const { return decode_seconds > 0 ? decode_tokens / decode_seconds : 0.0; }
};

struct SpeedResult {
  std::vector<SpeedRun> runs;
  bool replies_identical_across_runs = true;
  // Over the runs (n = runs): the spread the report shows.
  Summary prefill_tps() const;
  Summary decode_tps() const;
  Summary mean_query_seconds() const;
  Summary median_query_seconds() const;
};

struct ColdLoad {
  bool attempted = false;
  bool achieved = false;                // the page cache held (almost) none of the files when it started
  double resident_fraction_before = 0;  // of the model files' pages, after the drop
  std::optional<double> seconds;        // spawn to first token ready, only when achieved
  std::string note;                     // why it was not attempted or not achieved
};

struct LoadResult {
  double seconds = 0;                   // spawn to first token ready, in the measuring (warm) process
  double process_start_seconds = 0;     // spawn to the worker's entry
  double model_seconds = 0;             // Model::load
  double text_seconds = 0;              // tokenizer, chat template, stop tokens
  double first_forward_seconds = 0;     // one single-token forward pass
  double resident_fraction_before = 0;  // page cache state of the model files at spawn
  std::string cache_state;              // "warm" (>= 99 % resident), "partial", "cold" (<= 1 %)
  ColdLoad cold;
};

struct MemoryResult {
  uint64_t peak_rss = 0;  // VmHWM of the worker at the end
  uint64_t rss_file = 0;  // file-backed resident memory at the end (mapped weights mostly)
  uint64_t rss_anon = 0;
  uint64_t weights_mapped = 0, weights_resident = 0, weights_copied = 0, kv_cache = 0, scratch = 0;
  // What the memory rules compare: the model's own bytes, like mlx-lm's peak memory.
  uint64_t model_bytes() const { return weights_mapped + weights_copied + kv_cache + scratch; }
};

struct ModelInfo {
  std::string architecture;
  bool quantized = false;
  int bits = 0;  // 0: float or mixed
  int group_size = 0;
  uint64_t params = 0;
  double bits_per_weight = 0;
  uint64_t disk_bytes = 0;
  size_t experts = 0;  // 0: dense
  // FNV-1a 64 of tokenizer.json and of the chat template source (bench/text_identity.h): models with
  // equal digests tokenize and render a suite alike. "" when the file is absent.
  std::string tokenizer_digest, chat_template_digest;
};

// Where the worker's suite time went: inside the model calls or in the harness around them.
struct HarnessResult {
  double suite_seconds = 0;    // wall time of all runs over the suite
  double model_seconds = 0;    // inside prefill, decode and greedy token choice
  double harness_seconds = 0;  // the rest: templates, tokenization, parsing, scoring
  double overhead_pct() const { return suite_seconds > 0 ? 100.0 * harness_seconds / suite_seconds : 0.0; }
};

// What `quantlab plan` predicts for the directory as benched (quant::estimate_as_stored), at the
// runtime the bench session had, so that each prediction stands next to its measurement.
struct PlanPrediction {
  std::string origin;            // what the plan read (quant::plan_origin_name)
  int bits = 0, group_size = 0;  // the stored setting predicted; 0: a float model as stored
  uint64_t context = 0;          // KV-cache positions assumed: the bench session's limit
  uint64_t prefill_batch = 0;    // tokens per prefill batch assumed for the scratch buffers
  size_t threads = 0;            // attention-score rows assumed (one per worker)
  uint64_t tensor_bytes = 0;     // weight tensor data
  uint64_t header_bytes = 0;     // safetensors headers (estimated as quantlab writes them)
  uint64_t kv_cache_bytes = 0, scratch_bytes = 0;
  uint64_t bytes_per_token = 0;  // weight bytes one decode step reads
  double bandwidth_gb_per_s = 0; // measured by the same bench run (0: unknown, no bound)

  uint64_t disk_bytes() const { return tensor_bytes + header_bytes; }
  uint64_t memory_bytes() const { return tensor_bytes + kv_cache_bytes + scratch_bytes; }
  // The decode roofline: bandwidth / bytes read per token. 0 without a bandwidth.
  double decode_tps_bound() const {
    return bandwidth_gb_per_s > 0 && bytes_per_token ? bandwidth_gb_per_s * 1e9 / bytes_per_token : 0.0;
  }
};

struct ModelResult {
  std::string name, dir;
  std::string compute = "exact";  // the arithmetic of its quantized matrices (docs/compute-paths.md)
  bool ok = false;
  std::string error;  // when !ok: why the model could not be measured
  ModelInfo info;
  LoadResult load;
  MemoryResult memory;
  SpeedResult speed;
  AccuracySummary accuracy;
  std::vector<QueryResult> queries;
  HarnessResult harness;
  std::optional<PlanPrediction> plan;  // none when the plan could not be computed (see plan_warning)
  std::string plan_warning;            // why there is no plan; empty when there is one

  std::vector<bool> correct_by_query() const;
};

struct BenchSettings {
  std::string suite, tools;
  size_t suite_queries = 0;
  size_t max_tokens = 64;
  size_t runs = 1;
  size_t threads = 0;
  bool thinking = false;
  bool cold = true;
  std::string baseline;
  Criteria criteria;
};

struct MachineInfo {
  std::string cpu, simd_target;
  size_t threads = 0;
  double bandwidth_gb_per_s = 0;  // memory read bandwidth, measured in the same run (0: not measured)
  std::string bandwidth_source;   // "measured, 256 MiB, 2 threads" or "given (--bandwidth)"
};

struct BenchResults {
  std::string schema = std::string(kBenchSchemaId);
  std::string quantlab_version;
  std::string created_utc;
  MachineInfo machine;
  BenchSettings settings;
  std::vector<ModelResult> models;
  std::vector<Comparison> comparisons;
  double total_seconds = 0;    // the whole bench command
  double workers_seconds = 0;  // of which inside worker processes

  const ModelResult* find(std::string_view name) const;
};

nlohmann::ordered_json to_json(const ModelResult& r);
nlohmann::ordered_json to_json(const BenchResults& r);
// Throw Error(kInvalidInput) naming `source` and the field path ("models[1].speed.runs") when a field
// is missing or has the wrong type.
ModelResult model_result_from_json(const nlohmann::ordered_json& j, const std::string& source);
BenchResults bench_results_from_json(const nlohmann::ordered_json& j, const std::string& source);

// A measurement over the plan's prediction for one model (ratios; 0 where a side is missing).
struct PlanVsMeasured {
  double disk_ratio = 0;                // disk bytes measured / predicted
  double memory_ratio = 0;              // model memory measured / predicted
  double decode_fraction_of_bound = 0;  // median decode tokens/s / the plan's bound
};
// Requires r.plan.
PlanVsMeasured plan_vs_measured(const ModelResult& r);

// The figures the decision rules read from a measured model.
ModelFigures figures_of(const ModelResult& r);

// Fills results.comparisons: every measured model other than the baseline against it. A candidate
// or baseline that failed gets no comparison. Throws Error(kUsage) when the baseline is not a model.
void add_comparisons(BenchResults& results);

}  // namespace quantlab::eval
