// quantlab sweep FUSED --suite Q [--tools T] [--bits 8,7,6,5,4,3] [--group-size G] [--criteria C]
//                [--baseline-bits 8] [--base BASE] [--keep-ratio 1,0.75,0.5] [--target-bpw 3,3.5,4]
//                [--recipe mixed_3_6,...] [--calibration SUITE] [--max-tokens N] [--runs R]
//                [--no-cold] [--bandwidth GB/s] --out DIR
// Quantizes each width into DIR/models, benchmarks each with the bench machinery (one child process
// per model), and writes DIR/report.md, DIR/results.json and DIR/chart.svg. Rerunning the same command
// resumes: widths already quantized and measured with the same settings are reused.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <ctime>
#include <filesystem>

#include "analysis/sweep.h"
#include "bench/machine_probe.h"
#include "bench/runner.h"
#include "cli/bit_widths.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"

namespace quantlab::cli {

namespace {

struct SweepArgs {
  std::string fused, base, bits = "8,7,6,5,4,3", suite, tools, criteria, out;
  std::vector<double> keep_ratios = {1.0}, target_bpw;
  std::vector<std::string> recipes;
  std::string calibration;
  int group_size = 64, baseline_bits = 8;
  size_t max_tokens = 64, runs = 1, threads = 0;
  double bandwidth = 0;  // GB/s; 0: measured once at the start
  bool thinking = false, no_cold = false, quiet = false;
};

void print_summary(const analysis::SweepResult& r, const std::string& out) {
  fmt::print("{:>20}  {:>10}  {:>9}  {:>9}  {:>8}  {}\n", "width", "disk", "accuracy", "retention", "of bound",
             "verdict");
  for (const auto& w : r.widths) {
    const std::string kept = w.retention ? fmt::format("{:.3f}", w.retention->cosine()) : "-";
    const std::string verdict = !w.result.ok ? "error: " + w.result.error
                                : w.name == r.baseline ? "baseline"
                                : w.comparison ? std::string(eval::verdict_name(w.comparison->verdict)) : "-";
    // Measured decode speed as a share of the plan's bound (bandwidth / bytes read per token).
    const double of_bound = w.result.ok && w.result.plan ? eval::plan_vs_measured(w.result).decode_fraction_of_bound : 0;
    const std::string bound = of_bound > 0 ? fmt::format("{:.0f} %", 100 * of_bound) : "-";
    fmt::print("{:>20}  {:>10}  {:>8.1f}%  {:>9}  {:>8}  {}{}\n", w.name, human_bytes(w.result.info.disk_bytes),
               w.result.accuracy.overall.pct(), kept, bound, verdict, w.benched_now ? "" : " (reused)");
  }
  fmt::print("lowest minimum viable: {}; lowest optimal: {}\n",
             r.lowest_minimum_viable ? fmt::format("{}-bit", *r.lowest_minimum_viable) : "none",
             r.lowest_optimal ? fmt::format("{}-bit", *r.lowest_optimal) : "none");
  const auto smallest = [&r](const std::optional<size_t>& i) {
    return i ? fmt::format("{} ({:.2f} bits per weight, {})", r.widths[*i].name, r.widths[*i].result.info.bits_per_weight,
                           human_bytes(r.widths[*i].result.info.disk_bytes))
             : std::string("none");
  };
  if (r.widths.size() > 1)
    fmt::print("smallest of any kind: minimum viable {}; optimal {}\n", smallest(r.smallest_minimum_viable),
               smallest(r.smallest_optimal));
  fmt::print("report: {0}/report.md, {0}/results.json, {0}/chart.svg\n", out);
}

void run_sweep_command(const SweepArgs& a) {
  analysis::SweepOptions o;
  o.fused_dir = a.fused;
  o.base_dir = a.base;
  o.bits = parse_bit_widths(a.bits);
  o.keep_ratios = a.keep_ratios;
  o.target_bpw = a.target_bpw;
  o.recipes = a.recipes;
  o.calibration_suite = a.calibration;
  o.group_size = a.group_size;
  o.baseline_bits = a.baseline_bits;
  o.out_dir = a.out;
  o.show_progress = !a.quiet && Progress::stderr_is_terminal();
  o.bench = bench::make_bench_settings({a.suite, a.tools, a.criteria, a.max_tokens, a.runs, a.threads, a.thinking,
                                        a.no_cold});
  o.machine = bench::describe_machine(a.threads, a.bandwidth);
  o.created_utc = utc_now_iso8601();
  // One bench worker process per width, as `quantlab bench` runs them.
  const analysis::ModelBencher measure = [&](const std::string& name, const std::string& dir) {
    const bench::BenchPlan plan = bench::make_bench_plan(o.bench, {{name, dir}}, o.machine.bandwidth_gb_per_s);
    const auto on_model = [&](size_t, std::string_view phase) {
      if (!a.quiet) fmt::print(stderr, "{}: {}\n", name, phase);
    };
    return bench::measure_models(plan, on_model).models.front();
  };
  ThreadPool pool(a.threads);
  print_summary(analysis::run_sweep(o, measure, pool), a.out);
}

}  // namespace

void register_sweep(CLI::App& app) {
  auto a = std::make_shared<SweepArgs>();
  auto* cmd = app.add_subcommand("sweep", "Quantize a fused model at several widths, benchmark each, and find the "
                                          "lowest width that is minimum viable / optimal");
  cmd->add_option("fused", a->fused, "Fused float model directory")->required();
  cmd->add_option("--suite", a->suite, "Query suite (JSONL)")->required();
  cmd->add_option("--tools", a->tools, "Tool schemas (JSON) rendered into the prompts");
  cmd->add_option("--bits", a->bits, "Widths to sweep, comma-separated")->capture_default_str();
  cmd->add_option("--keep-ratio", a->keep_ratios,
                  "MoE: shares of the experts to keep (least salient on the suite dropped), each crossed with every "
                  "width, e.g. 1,0.75,0.5")
      ->delimiter(',');
  cmd->add_option("--target-bpw", a->target_bpw,
                  "Mixed precision: one plan allocated per budget in bits per weight (calibrate, sensitivity, measured "
                  "gains, allocate; docs/mixed-precision.md), e.g. 3,3.5,4,4.5")
      ->delimiter(',');
  cmd->add_option("--recipe", a->recipes, "mlx-lm mixed recipes to add, e.g. mixed_3_6,mixed_4_6")->delimiter(',');
  cmd->add_option("--calibration", a->calibration, "Suite the mixed plans are calibrated on (default: --suite)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--group-size", a->group_size, "Quantization group size (32, 64, 128)")->capture_default_str();
  cmd->add_option("--criteria", a->criteria, "Decision rules (TOML); default: ARCHITECTURE.md's");
  cmd->add_option("--baseline-bits", a->baseline_bits, "Width the others are compared with")
      ->check(CLI::Range(2, 8))->capture_default_str();
  cmd->add_option("--base", a->base, "Base float model: adds the weight-only retention of the fine-tune per width");
  cmd->add_option("--max-tokens", a->max_tokens, "Most tokens per reply")->check(CLI::Range(1, 1 << 16))->capture_default_str();
  cmd->add_option("--runs", a->runs, "Speed runs over the suite per width")->check(CLI::Range(1, 100))->capture_default_str();
  cmd->add_option("--out", a->out, "Output and resume directory")->required();
  add_threads_option(cmd, &a->threads);
  cmd->add_flag("--thinking", a->thinking, "Render prompts with thinking on");
  cmd->add_flag("--no-cold", a->no_cold, "Skip the cold-cache load measurement of each width");
  cmd->add_option("--bandwidth", a->bandwidth,
                  "Memory bandwidth in GB/s for the plan's decode bound (default: measured at the start, ~0.5 s)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--quiet", a->quiet, "No progress output");
  cmd->callback([a] { run_sweep_command(*a); });
}

}  // namespace quantlab::cli
