#include "bench/runner.h"

#include <fmt/format.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "bench/page_cache.h"
#include "bench/process.h"
#include "bench/remote_runner.h"
#include "core/error.h"
#include "io/output_dir.h"
#include "eval/criteria.h"
#include "eval/suite.h"
#include "core/mapped_file.h"
#include "serve/openai_client.h"

namespace quantlab::bench {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

// A private directory for the workers' result files, removed with its contents at the end.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = (fs::temp_directory_path() / "quantlab-bench-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) fail(ErrorKind::kIo, "cannot create a temporary directory in {}", pattern);
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

struct WorkerRun {
  eval::ModelResult result;
  double seconds = 0;
};

// Spawns one worker and reads its result; a worker that dies without a result is a failed model.
WorkerRun spawn_worker(WorkerSpec spec, const std::string& result_path) {
  std::error_code ec;
  fs::remove(result_path, ec);
  const std::string exe = self_executable();
  spec.spawn_ns = monotonic_ns();
  const ChildExit exit =
      run_child(exe, {std::string(kWorkerCommand), "--spec", to_json(spec).dump(), "--result", result_path});
  WorkerRun run;
  run.seconds = seconds_between(spec.spawn_ns, monotonic_ns());
  if (fs::exists(result_path)) {
    const ojson j = ojson::parse(read_text_file(result_path), nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded()) {
      run.result = eval::model_result_from_json(j, result_path);
      return run;
    }
  }
  run.result.name = spec.name;
  run.result.dir = spec.model_dir;
  run.result.compute = spec.compute;
  run.result.error = fmt::format("the worker process ended without a result ({})", exit.describe());
  return run;
}

// Tries to empty the page cache of the model's files and, when that worked, times a load-only worker.
eval::ColdLoad measure_cold(const WorkerSpec& spec, const std::vector<std::string>& files,
                            const std::string& result_path, double& workers_seconds) {
  eval::ColdLoad cold;
  cold.attempted = true;
  const bool requested = drop_page_cache(files);
  cold.resident_fraction_before = page_cache_state(files).fraction();
  if (cache_state_label(cold.resident_fraction_before) != "cold") {
    cold.note = fmt::format("the page cache kept {:.1f} % of the model files{}", 100 * cold.resident_fraction_before,
                            requested ? "" : " (posix_fadvise was refused)");
    return cold;
  }
  WorkerSpec load_only = spec;
  load_only.load_only = true;
  load_only.resident_fraction_before = cold.resident_fraction_before;
  const WorkerRun run = spawn_worker(load_only, result_path);
  workers_seconds += run.seconds;
  cold.achieved = run.result.ok;
  if (run.result.ok)
    cold.seconds = run.result.load.seconds;
  else
    cold.note = run.result.error;
  return cold;
}

}  // namespace

MeasuredModels measure_models(const BenchPlan& plan, const std::function<void(size_t, std::string_view)>& on_model) {
  ScratchDir scratch;
  MeasuredModels out;
  for (size_t i = 0; i < plan.models.size(); ++i) {
    WorkerSpec spec = plan.common;
    spec.name = plan.models[i].name;
    spec.model_dir = plan.models[i].dir;
    spec.compute = plan.models[i].compute;
    if (serve::is_remote_spec(spec.model_dir)) {  // a server: measured from here, no worker, no cold load
      if (on_model) on_model(i, "suite (server)");
      const int64_t start = monotonic_ns();
      eval::ModelResult result = measure_remote(spec.name, spec.model_dir, spec);
      out.workers_seconds += seconds_between(start, monotonic_ns());
      if (result.plan) result.plan->bandwidth_gb_per_s = plan.bandwidth_gb_per_s;
      result.load.cold.note = "a server: load time is not measured";
      out.models.push_back(std::move(result));
      continue;
    }
    const std::string result_path = scratch.file(fmt::format("model-{}.json", i));
    const std::vector<std::string> files = model_files(spec.model_dir);
    eval::ColdLoad cold;
    cold.note = files.empty() ? "no model files" : "not requested (--no-cold)";
    if (plan.cold && !files.empty()) {
      if (on_model) on_model(i, "cold load");
      cold = measure_cold(spec, files, result_path, out.workers_seconds);
    }
    if (on_model) on_model(i, "suite");
    warm_page_cache(files);
    spec.resident_fraction_before = page_cache_state(files).fraction();
    WorkerRun run = spawn_worker(spec, result_path);
    out.workers_seconds += run.seconds;
    run.result.load.cold = cold;
    if (run.result.plan) run.result.plan->bandwidth_gb_per_s = plan.bandwidth_gb_per_s;
    out.models.push_back(std::move(run.result));
  }
  return out;
}

std::string run_worker_command(const std::string& spec_json, const std::string& result_path) {
  const WorkerSpec spec = worker_spec_from_json(spec_json);
  const eval::ModelResult result = run_worker_reporting_failure(spec);
  io::write_file_atomically(result_path, to_json(result).dump(1, ' ', false, ojson::error_handler_t::replace));
  return result.ok ? "" : fmt::format("model '{}' ({}): {}", result.name, result.dir, result.error);
}

eval::BenchSettings make_bench_settings(const BenchFlags& f) {
  eval::BenchSettings s;
  s.suite = f.suite;
  s.tools = f.tools.empty() ? eval::default_tools_path(f.suite) : f.tools;
  const eval::ToolSet tools = eval::load_tools(s.tools);
  s.suite_queries = eval::load_suite(s.suite, &tools).queries.size();
  s.criteria = f.criteria.empty() ? eval::default_criteria() : eval::load_criteria(f.criteria);
  s.max_tokens = f.max_tokens;
  s.runs = f.runs;
  s.threads = f.threads;
  s.thinking = f.thinking;
  s.cold = !f.no_cold;
  return s;
}

BenchPlan make_bench_plan(const eval::BenchSettings& s, std::vector<ModelEntry> models, double bandwidth_gb_per_s) {
  BenchPlan plan;
  plan.models = std::move(models);
  plan.common = {"", "", s.suite, s.tools, s.max_tokens, s.runs, s.threads, s.thinking};
  plan.cold = s.cold;
  plan.bandwidth_gb_per_s = bandwidth_gb_per_s;
  return plan;
}

}  // namespace quantlab::bench
