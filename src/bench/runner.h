// The parent side of `quantlab bench`: measures each model in a worker process of its own (this
// binary re-executed with the hidden `bench-worker` command), first a cold load when the page cache
// can be emptied, then the warm run over the suite, and collects what the workers report. A model
// that fails is reported as failed; the others are still measured.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "bench/worker.h"
#include "eval/report_schema.h"

namespace quantlab::bench {

// The hidden subcommand the parent starts: `quantlab bench-worker --spec JSON --result FILE`.
inline constexpr std::string_view kWorkerCommand = "bench-worker";

struct ModelEntry {
  std::string name, dir;
  std::string compute = "exact";  // kernels::compute_name; servers ignore it
};

struct BenchPlan {
  std::vector<ModelEntry> models;
  WorkerSpec common;  // suite, tools, max_tokens, runs, threads, thinking (name and dir are per model)
  bool cold = true;   // try a cold-cache load per model
  double bandwidth_gb_per_s = 0;  // the run's measured bandwidth, stamped on each model's plan (its bound)
};

// The flags `bench` and `sweep` share.
struct BenchFlags {
  std::string suite, tools, criteria;  // tools/criteria empty: the defaults
  size_t max_tokens = 64, runs = 1, threads = 0;
  bool thinking = false, no_cold = false;
};

// The run's settings from the flags: tools (default: tools.json beside the suite), the suite (loaded
// once here, so a bad suite fails before any work) and the criteria. Throws Error naming the file.
eval::BenchSettings make_bench_settings(const BenchFlags& flags);

// A plan measuring `models` with these settings, their bounds stamped with the run's bandwidth.
BenchPlan make_bench_plan(const eval::BenchSettings& settings, std::vector<ModelEntry> models,
                          double bandwidth_gb_per_s);

struct MeasuredModels {
  std::vector<eval::ModelResult> models;
  double workers_seconds = 0;  // wall time inside worker processes, spawn to exit
};

// on_model(index, phase) is called before each worker starts ("cold load", "suite") for progress.
MeasuredModels measure_models(const BenchPlan& plan,
                              const std::function<void(size_t, std::string_view)>& on_model = {});

// The worker side: runs the spec and writes its ModelResult as JSON to result_path (atomically).
// Returns "" when the model was measured, else what went wrong ("model 'q6' (DIR): ...").
std::string run_worker_command(const std::string& spec_json, const std::string& result_path);

}  // namespace quantlab::bench
