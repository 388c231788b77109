// quantlab plan [MODEL ...] [--like NAME ...] [--bits 2,3,...] [--group-size 32,64,128] [--baseline-bits 8]
//   [--baseline-group-size 64] [--context N] [--bandwidth GB/s] [--criteria FILE] [--json]
// Predicts size, memory and decode speed per setting from config.json (+ headers) and marks which
// settings the size and memory rules already rule out (issue 7). Several models (directories, or
// published configs by --like name) are planned side by side (issue 20: a smaller base).
#include <CLI/CLI.hpp>
#include <cmath>
#include <stdexcept>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "analysis/plan_report.h"
#include "bench/machine_probe.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "eval/criteria.h"
#include "kernels/format.h"
#include "io/model_config.h"
#include "quant/size_plan.h"
#include "quant/synth.h"

namespace quantlab::cli {

namespace {

struct PlanArgs {
  std::vector<std::string> models, likes;
  std::string criteria_file, keep_experts;
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

// A published model's config (synth's presets) as a plan source: nothing to read from disk.
quant::PlanSource preset_source(const std::string& like) {
  const std::string label = "like:" + like;
  quant::PlanSource src = quant::plan_source_from_config(
      io::parse_model_config(quant::synth_config(like, std::nullopt, DType::kBF16), label));
  src.dir = label;
  return src;
}

// --keep-experts N (a count) or R (a share, with a decimal point: 0.5 keeps half, rounded).
int64_t experts_kept(const std::string& text, const quant::PlanSource& src) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used != text.size()) throw std::invalid_argument(text);
    if (text.find('.') == std::string::npos) return static_cast<int64_t>(v);
    if (!(v > 0 && v <= 1)) fail(ErrorKind::kUsage, "--keep-experts {}: a share must be in (0, 1]", text);
    return std::max<int64_t>(1, std::llround(v * static_cast<double>(src.config.num_experts)));
  } catch (const std::logic_error&) {
    fail(ErrorKind::kUsage, "--keep-experts {}: expected a count (96) or a share (0.75)", text);
  }
}

void run_plan(const PlanArgs& a) {
  if (a.context < 1) fail(ErrorKind::kUsage, "--context {}: must be at least 1", a.context);
  if (a.models.empty() && a.likes.empty()) fail(ErrorKind::kUsage, "give a model directory or --like NAME");
  const eval::Criteria criteria = a.criteria_file.empty() ? eval::default_criteria() : eval::load_criteria(a.criteria_file);
  std::vector<quant::PlanSource> sources;
  for (const std::string& dir : a.models) sources.push_back(quant::load_plan_source(dir));
  for (const std::string& like : a.likes) sources.push_back(preset_source(like));
  if (!a.keep_experts.empty())
    for (quant::PlanSource& src : sources) src = quant::with_experts_kept(src, experts_kept(a.keep_experts, src));
  std::vector<quant::QuantSetting> settings;
  for (int b : a.bits)
    for (int g : a.groups) settings.push_back({b, g});
  ThreadPool pool(a.threads);
  quant::RuntimeAssumptions runtime;
  runtime.context = a.context;
  runtime.threads = pool.size();
  const Bandwidth bw = resolve_bandwidth(a, pool);
  std::vector<analysis::PlanReport> reports;
  for (const quant::PlanSource& src : sources) {
    const auto table =
        quant::make_plan_table(src, settings, {a.baseline_bits, a.baseline_group}, runtime, bw.gb_per_s, pool);
    reports.push_back({{a.baseline_bits, a.baseline_group, a.context}, &src, table, &criteria,
                       analysis::check_plan(criteria, table), bw.gb_per_s, bw.source});
  }
  if (reports.size() == 1) {
    if (a.json) fmt::print("{}\n", analysis::plan_json(reports.front()).dump(2));
    else fmt::print("{}", analysis::plan_markdown(reports.front()));
    return;
  }
  if (a.json) {
    fmt::print("{}\n", analysis::plan_side_by_side_json(reports).dump(2));
    return;
  }
  for (const analysis::PlanReport& r : reports) fmt::print("{}\n", analysis::plan_markdown(r));
  fmt::print("{}", analysis::plan_side_by_side_markdown(reports));
}

}  // namespace

void register_plan(CLI::App& app) {
  auto a = std::make_shared<PlanArgs>();
  auto* cmd = app.add_subcommand("plan", "Predict size, memory and decode speed per bit width before quantizing");
  cmd->add_option("model", a->models,
                  "Model directories (config.json alone is enough; float or MLX-quantized); several are planned "
                  "side by side");
  cmd->add_option("--like", a->likes,
                  fmt::format("A published model's config instead of a directory (repeatable): {}",
                              fmt::join(quant::synth_preset_names(), ", ")));
  cmd->add_option("--bits", a->bits, "Bit widths to plan (comma-separated)")
      ->delimiter(',')->check(bit_width_check());
  cmd->add_option("--group-size", a->groups, "Group sizes to plan (comma-separated)")
      ->delimiter(',')->check(group_size_check());
  cmd->add_option("--baseline-bits", a->baseline_bits, "Bits of the baseline the rules compare with")
      ->check(bit_width_check());
  cmd->add_option("--baseline-group-size", a->baseline_group, "Group size of the baseline")
      ->check(group_size_check());
  cmd->add_option("--keep-experts", a->keep_experts,
                  "MoE: plan the model pruned to N experts per layer (or a share R such as 0.5), as `quantlab prune` "
                  "writes it");
  cmd->add_option("--context", a->context, "Context length for the KV-cache memory estimate (default 4096)");
  cmd->add_option("--bandwidth", a->bandwidth, "Memory bandwidth in GB/s (default: measured now, ~0.5 s)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--criteria", a->criteria_file, "Criteria TOML (docs/criteria.md); default: ARCHITECTURE.md rules");
  add_threads_option(cmd, &a->threads);
  cmd->add_flag("--json", a->json, "Machine-readable output");
  cmd->callback([a] { run_plan(*a); });
}

}  // namespace quantlab::cli
