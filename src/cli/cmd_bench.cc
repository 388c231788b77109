// quantlab bench --model NAME=DIR ... --suite QUERIES.jsonl [--tools TOOLS.json] [--baseline NAME]
//                [--criteria FILE.toml] [--max-tokens N] [--runs R] [--threads N] [--thinking] [--no-cold]
//                [--bandwidth GB/s] [--source FLOAT_DIR] [--out RESULTS.json] [--report REPORT.md] [--json]
// Measures each model in a worker process of its own (accuracy on the suite, disk, memory, speed,
// load time, and `plan`'s prediction of each next to it), compares every model with the baseline,
// applies the decision rules and prints a table (or, with --json, RESULTS.json) on stdout. Exit code 3
// when a model could not be measured; the others are still measured and reported.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <ctime>
#include <fstream>
#include <set>

#include "bench/machine_probe.h"
#include "bench/next_options.h"
#include "bench/text_identity.h"
#include "bench/process.h"
#include "bench/runner.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "io/output_dir.h"
#include "quantlab/version.h"
#include "core/progress.h"
#include "eval/criteria.h"
#include "eval/report_schema.h"
#include "eval/report_text.h"
#include "eval/suite.h"
#include "serve/openai_client.h"

namespace quantlab::cli {

void register_bench_worker(CLI::App& app);  // cmd_bench_worker.cc

namespace {

struct BenchArgs {
  std::vector<std::string> models, model_compute;
  kernels::Compute compute = kernels::Compute::kExact;
  std::string suite, tools, baseline, criteria, out, report, source;
  size_t max_tokens = 64, runs = 1, threads = 0;
  double bandwidth = 0;  // GB/s; 0: measured at the start of the run
  bool thinking = false, no_cold = false, json = false;
};

// Everything that can be checked before a worker starts: flags, suite, tools, criteria.
eval::BenchResults prepare(const BenchArgs& a, bench::BenchPlan& plan) {
  eval::BenchResults results;
  std::vector<bench::ModelEntry> models;
  std::set<std::string> names;
  for (const std::string& m : a.models) {
    const NamedDir named = parse_named_dir(m);
    if (serve::is_remote_spec(named.dir)) (void)serve::parse_remote_endpoint(named.dir);  // a bad URL: a usage error now
    models.push_back({named.name, named.dir});
    if (!names.insert(models.back().name).second)
      fail(ErrorKind::kUsage, "--model: the name '{}' is used twice", models.back().name);
  }
  const std::map<std::string, kernels::Compute> computes = parse_model_compute(a.model_compute, names);
  for (bench::ModelEntry& m : models) {
    const auto named = computes.find(m.name);
    m.compute = kernels::compute_name(named == computes.end() ? a.compute : named->second);
  }
  eval::BenchSettings& s = results.settings;
  s = bench::make_bench_settings(
      {a.suite, a.tools, a.criteria, a.max_tokens, a.runs, a.threads, a.thinking, a.no_cold});
  s.baseline = a.baseline.empty() ? models.front().name : a.baseline;
  if (!names.count(s.baseline)) fail(ErrorKind::kUsage, "--baseline '{}' is not one of the --model names", s.baseline);
  results.quantlab_version = std::string(kQuantlabVersion);
  results.created_utc = utc_now_iso8601();
  // Last, once every input checked out: the bandwidth probe takes about half a second.
  results.machine = bench::describe_machine(a.threads, a.bandwidth);
  plan = bench::make_bench_plan(s, std::move(models), results.machine.bandwidth_gb_per_s);
  return results;
}

void run_bench(const BenchArgs& a) {
  const int64_t start = bench::monotonic_ns();
  bench::BenchPlan plan;
  eval::BenchResults results = prepare(a, plan);
  const bool show = Progress::stderr_is_terminal();
  const auto on_model = [&](size_t i, std::string_view phase) {
    if (show) fmt::print(stderr, "[{}/{}] {}: {}\n", i + 1, plan.models.size(), plan.models[i].name, phase);
  };
  bench::MeasuredModels measured = bench::measure_models(plan, on_model);
  results.models = std::move(measured.models);
  results.workers_seconds = measured.workers_seconds;
  for (const eval::ModelResult& m : results.models)
    if (m.ok && !m.plan) fmt::print(stderr, "warning: {}: no plan prediction: {}\n", m.name, m.plan_warning);
  bench::add_text_identities(results);
  eval::add_comparisons(results);
  bench::add_next_options(results, {a.source, results.settings.suite, results.settings.tools});
  results.total_seconds = bench::seconds_between(start, bench::monotonic_ns());
  const auto json_text = eval::to_json(results).dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  if (!a.out.empty()) io::write_file_atomically(a.out, json_text + "\n");
  if (!a.report.empty()) io::write_file_atomically(a.report, eval::render_markdown(results));
  fmt::print("{}", a.json ? json_text + "\n" : eval::render_table(results));
  std::fflush(stdout);
  std::string failed;
  for (const eval::ModelResult& m : results.models)
    if (!m.ok) failed += fmt::format("\n  {} ({}): {}", m.name, m.dir, m.error);
  if (!failed.empty()) fail_input("some models could not be measured (the others were):{}", failed);
}

}  // namespace

void register_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "Benchmark models on a tool-or-answer suite and apply the decision rules");
  cmd->add_option("--model", a->models, "NAME=DIR, or NAME=URL[#MODEL_ID][@DIR] for an OpenAI-compatible server (repeat for each model; the first is the default baseline)")
      ->required();
  cmd->add_option("--suite", a->suite, "Query suite (JSON lines)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--tools", a->tools, "Tool schemas (JSON list); default: tools.json beside the suite or one up")
      ->check(CLI::ExistingFile);
  cmd->add_option("--baseline", a->baseline, "Model NAME the others are compared with (default: the first)");
  cmd->add_option("--criteria", a->criteria, "Decision rules (TOML, docs/criteria.md); default: ARCHITECTURE.md's")
      ->check(CLI::ExistingFile);
  cmd->add_option("--max-tokens", a->max_tokens, "Most tokens generated per query")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--runs", a->runs, "Passes over the suite for speed (accuracy from the first)")
      ->check(CLI::Range(1, 1000));
  add_threads_option(cmd, &a->threads);
  add_compute_option(cmd, &a->compute);
  cmd->add_option("--model-compute", a->model_compute,
                  "NAME=exact|int8|bf16: one model's arithmetic, past --compute (repeat; the same DIR under two names "
                  "measures what int8 costs)");
  cmd->add_flag("--thinking", a->thinking, "Render prompts with enable_thinking=true (default off)");
  cmd->add_flag("--no-cold", a->no_cold, "Skip the cold-cache load measurement");
  cmd->add_option("--bandwidth", a->bandwidth,
                  "Memory bandwidth in GB/s for the plan's decode bound (default: measured at the start, ~0.5 s)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--source", a->source,
                  "The float model the candidates were quantized from: the next steps' commands start from it")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--out", a->out, "Write RESULTS.json here (docs/bench-schema.md)");
  cmd->add_option("--report", a->report, "Write a Markdown report here");
  cmd->add_flag("--json", a->json, "Print RESULTS.json on stdout instead of the table");
  cmd->callback([a] { run_bench(*a); });
  register_bench_worker(app);
}

}  // namespace quantlab::cli
