// What one bench worker process does for one model: load it (timed from the moment the parent
// spawned the process to the first token ready), run the suite --runs times with greedy decoding,
// score the first run's replies, and report speed, memory and harness overhead.
//
// The parent passes a WorkerSpec as JSON on the command line of the hidden `bench-worker` command and
// reads the eval::ModelResult back from the result file.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "eval/report_schema.h"
#include "quant/model_summary.h"

namespace quantlab::bench {

struct WorkerSpec {
  std::string name, model_dir, suite, tools;
  size_t max_tokens = 64;
  size_t runs = 1;
  size_t threads = 0;  // 0: one per hardware thread
  bool thinking = false;
  bool load_only = false;               // stop once the first token is ready (cold-load measurements)
  int64_t spawn_ns = 0;                 // monotonic_ns() when the parent spawned the worker; 0: the worker's start
  double resident_fraction_before = 0;  // page cache state of the model files at spawn
  std::string compute = "exact";        // kernels::compute_name of the model's arithmetic
};

nlohmann::ordered_json to_json(const WorkerSpec& spec);
// Throws Error(kUsage) naming the field when the JSON is not a spec.
WorkerSpec worker_spec_from_json(const std::string& text);

// What the bench reports of a model's files: architecture, width, parameters, bits per weight, disk.
eval::ModelInfo model_info_of(const quant::ModelSummary& summary);

// Runs the spec in this process. Throws quantlab::Error when the model, its tokenizer or chat template
// cannot be loaded; the caller reports that as a failed model.
eval::ModelResult run_worker(const WorkerSpec& spec);

// run_worker that never throws: failures become a ModelResult with ok = false and the message.
eval::ModelResult run_worker_reporting_failure(const WorkerSpec& spec);

}  // namespace quantlab::bench
