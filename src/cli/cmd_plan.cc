// quantlab plan MODEL [--bits 2,3,...] [--group-size 32,64,128] [--baseline-bits 8]
//   [--baseline-group-size 64] [--context N] [--bandwidth GB/s] [--criteria FILE] [--json]
// Predicts size, memory and decode speed per setting from config.json (+ headers) and marks which
// settings the size and memory rules already rule out (issue 7).
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "analysis/plan_report.h"
#include "bench/machine_probe.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "eval/criteria.h"
#include "kernels/format.h"
#include "quant/size_plan.h"

namespace quantlab::cli {

namespace {

struct PlanArgs {
  std::string model, criteria_file;
  // Every width and group size of the format table (kernels/format.h) unless the flags narrow them.
  std::vector<int> bits = kernels::supported_bits();
  std::vector<int> groups{kernels::supported_group_sizes().begin(), kernels::supported_group_sizes().end()};
  int baseline_bits = 8, baseline_group = 64;
  int64_t context = 4096;
  double bandwidth = 0;
  size_t threads = 0;
  bool json = false;
};

struct Bandwidth {
  double gb_per_s = 0;
  std::string source;
};

Bandwidth resolve_bandwidth(const PlanArgs& a, ThreadPool& pool) {
  if (a.bandwidth > 0) return {a.bandwidth, "given"};
  // A quick probe (~0.5 s): 256 MiB, far beyond the caches, best of 3 passes.
  const auto r = bench::measure_read_bandwidth(pool, size_t{256} << 20, 3);
  return {r.read_gb_per_s, fmt::format("measured, {} threads", r.threads)};
}

void run_plan(const PlanArgs& a) {
  if (a.context < 1) fail(ErrorKind::kUsage, "--context {}: must be at least 1", a.context);
  const eval::Criteria criteria = a.criteria_file.empty() ? eval::default_criteria() : eval::load_criteria(a.criteria_file);
  const quant::PlanSource src = quant::load_plan_source(a.model);
  std::vector<quant::QuantSetting> settings;
  for (int b : a.bits)
    for (int g : a.groups) settings.push_back({b, g});
  ThreadPool pool(a.threads);
  quant::RuntimeAssumptions runtime;
  runtime.context = a.context;
  runtime.threads = pool.size();
  const Bandwidth bw = resolve_bandwidth(a, pool);
  const auto table = quant::make_plan_table(src, settings, {a.baseline_bits, a.baseline_group}, runtime, bw.gb_per_s, pool);
  analysis::PlanReport report{{a.baseline_bits, a.baseline_group, a.context}, &src, table, &criteria,
                              analysis::check_plan(criteria, table), bw.gb_per_s, bw.source};
  if (a.json) fmt::print("{}\n", analysis::plan_json(report).dump(2));
  else fmt::print("{}", analysis::plan_markdown(report));
}

}  // namespace

void register_plan(CLI::App& app) {
  auto a = std::make_shared<PlanArgs>();
  auto* cmd = app.add_subcommand("plan", "Predict size, memory and decode speed per bit width before quantizing");
  cmd->add_option("model", a->model, "Model directory (config.json alone is enough; float or MLX-quantized)")->required();
  cmd->add_option("--bits", a->bits, "Bit widths to plan (comma-separated)")
      ->delimiter(',')->check(bit_width_check());
  cmd->add_option("--group-size", a->groups, "Group sizes to plan (comma-separated)")
      ->delimiter(',')->check(group_size_check());
  cmd->add_option("--baseline-bits", a->baseline_bits, "Bits of the baseline the rules compare with")
      ->check(bit_width_check());
  cmd->add_option("--baseline-group-size", a->baseline_group, "Group size of the baseline")
      ->check(group_size_check());
  cmd->add_option("--context", a->context, "Context length for the KV-cache memory estimate (default 4096)");
  cmd->add_option("--bandwidth", a->bandwidth, "Memory bandwidth in GB/s (default: measured now, ~0.5 s)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--criteria", a->criteria_file, "Criteria TOML (docs/criteria.md); default: ARCHITECTURE.md rules");
  add_threads_option(cmd, &a->threads);
  cmd->add_flag("--json", a->json, "Machine-readable output");
  cmd->callback([a] { run_plan(*a); });
}

}  // namespace quantlab::cli
