// quantlab plan [MODEL ...] [--like NAME ...] [--bits 2,3,...] [--group-size 32,64,128] [--baseline-bits 8]
//   [--baseline-group-size 64] [--context N] [--bandwidth GB/s] [--criteria FILE] [--plan FILE.json ...]
//   [--recipe NAME ...] [--adapter DIR [--adapter-bits 6]] [--keep-experts N|R] [--method rtn,gptq,delta] [--json]
// Predicts size, memory and decode speed per setting from config.json (+ headers) and marks which
// settings the size and memory rules already rule out (issue 7). Several models (directories, or
// published configs by --like name) are planned side by side (issue 20: a smaller base).
#include <CLI/CLI.hpp>
#include <filesystem>
#include <cmath>
#include <optional>
#include <stdexcept>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "analysis/plan_report.h"
#include "quant/plan_file.h"
#include "quant/recipe.h"
#include "quant/floor_plan.h"
#include "io/adapter_targets.h"
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
  std::vector<std::string> models, likes, plan_files, recipes;
  std::string criteria_file, keep_experts, adapter, method;
  int adapter_bits = 6;
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

// Rows for per-module plans (--plan FILE.json, as `allocate` writes and every mixed model carries) and
// mlx-lm recipes (--recipe NAME), after the uniform settings.
void add_mixed_rows(const PlanArgs& a, const quant::PlanSource& src, const quant::RuntimeAssumptions& runtime,
                    double bandwidth, quant::PlanTable& table) {
  std::vector<std::pair<std::string, quant::PlanOptions>> plans;
  for (const std::string& file : a.plan_files)
    plans.emplace_back(std::filesystem::path(file).filename().string(), quant::load_plan_file(file));
  for (const std::string& recipe : a.recipes) {
    quant::find_recipe(recipe);  // Error(kUsage) naming the known ones
    quant::PlanOptions o;
    o.recipe = recipe;
    o.group_size = a.baseline_group;
    plans.emplace_back(recipe, std::move(o));
  }
  for (const auto& [label, options] : plans)
    table.rows.push_back(quant::compare_to_baseline(quant::estimate_mixed(src, options, label, runtime), table.baseline,
                                                    table.float16_bytes, bandwidth));
}

// --adapter: the widest rest width with every module the adapter touches at >= --adapter-bits that meets
// the minimum-viable disk rule against the baseline (quant/floor_plan.h).
std::optional<quant::FloorPlan> adapter_floor(const PlanArgs& a, const quant::PlanSource& src,
                                              const quant::RuntimeAssumptions& runtime, const eval::Criteria& criteria,
                                              quant::PlanTable& table, double bandwidth) {
  if (a.adapter.empty()) return std::nullopt;
  const double pct = criteria.minimum_viable.disk_smaller_pct.value_or(0.0);
  const auto budget = static_cast<uint64_t>(double(table.baseline.tensor_bytes) * (1.0 - pct / 100.0));
  quant::FloorPlan f = quant::plan_with_floor(src, io::read_adapter_targets(a.adapter), a.adapter_bits,
                                              a.baseline_group, budget, runtime);
  table.rows.push_back(quant::compare_to_baseline(f.estimate, table.baseline, table.float16_bytes, bandwidth));
  return f;
}

std::string floor_text(const quant::FloorPlan& f, const quant::PlanTable& t, const PlanArgs& a) {
  const double smaller = 100.0 * (1.0 - double(f.estimate.tensor_bytes) / double(t.baseline.tensor_bytes));
  const double needed = 100.0 * (1.0 - double(f.budget_tensor_bytes) / double(t.baseline.tensor_bytes));
  const std::string head = fmt::format(
      "adapter floor: the {} modules {} touches ({}) at >= {}-bit g{}", f.touched.size(), a.adapter,
      human_bytes(f.touched_bytes), f.floor_bits, f.group_size);
  if (f.fits)
    return fmt::format("{}, the rest at {}-bit: {} of tensors, {:.1f} % smaller than {}-bit g{} (the rule needs "
                       "{:.0f} %) — meets it\n", head, f.rest_bits, human_bytes(f.estimate.tensor_bytes), smaller,
                       a.baseline_bits, a.baseline_group, needed);
  return fmt::format("{}: cannot meet the {:.0f} % disk rule against {}-bit g{}; even with the rest at {}-bit the "
                     "tensors take {}, {:.1f} % smaller (budget {})\n", head, needed, a.baseline_bits,
                     a.baseline_group, f.rest_bits, human_bytes(f.estimate.tensor_bytes), smaller,
                     human_bytes(f.budget_tensor_bytes));
}

nlohmann::ordered_json floor_json(const quant::FloorPlan& f) {
  return {{"fits", f.fits},           {"floor_bits", f.floor_bits},       {"rest_bits", f.rest_bits},
          {"group_size", f.group_size}, {"touched_modules", f.touched.size()}, {"touched_bytes", f.touched_bytes},
          {"tensor_bytes", f.estimate.tensor_bytes}, {"budget_tensor_bytes", f.budget_tensor_bytes},
          {"bits_per_weight", f.estimate.bits_per_weight()}};
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
  std::vector<std::optional<quant::FloorPlan>> floors;
  for (const quant::PlanSource& src : sources) {
    auto table = quant::make_plan_table(src, settings, {a.baseline_bits, a.baseline_group}, runtime, bw.gb_per_s, pool);
    add_mixed_rows(a, src, runtime, bw.gb_per_s, table);
    floors.push_back(adapter_floor(a, src, runtime, criteria, table, bw.gb_per_s));
    const std::vector<quant::RoundingMethod> methods =
        a.method.empty() ? std::vector<quant::RoundingMethod>{} : parse_method_list(a.method);
    reports.push_back({{a.baseline_bits, a.baseline_group, a.context, methods}, &src, table, &criteria,
                       analysis::check_plan(criteria, table), bw.gb_per_s, bw.source});
  }
  if (reports.size() == 1) {
    if (a.json) {
      nlohmann::ordered_json j = analysis::plan_json(reports.front());
      if (floors.front()) j["adapter_floor"] = floor_json(*floors.front());
      fmt::print("{}\n", j.dump(2));
      return;
    }
    fmt::print("{}", analysis::plan_markdown(reports.front()));
    if (floors.front()) fmt::print("{}", floor_text(*floors.front(), reports.front().table, a));
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
  cmd->add_option("--plan", a->plan_files, "A per-module plan (quantlab.plan/1, as `allocate` writes) to size beside "
                                           "the uniform settings (repeatable)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--recipe", a->recipes, "An mlx-lm mixed recipe to size beside the uniform settings (repeatable): "
                                          "mixed_2_6, mixed_3_4, mixed_3_6, mixed_4_6, ...");
  cmd->add_option("--adapter", a->adapter, "LoRA adapter (its adapter_config.json is enough): plan the widest width for "
                                          "the other modules that meets the disk rule with the adapter's modules kept "
                                          "at >= --adapter-bits");
  cmd->add_option("--adapter-bits", a->adapter_bits, "Floor for the modules the adapter touches")
      ->check(CLI::Range(2, 8))->capture_default_str();
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
  cmd->add_option("--method", a->method,
                  "Rounding methods to plan for (rtn, gptq, delta; comma-separated): the report says they change "
                  "no size, memory or speed, and what each needs at quantize time")
      ->check(method_list_check());
  cmd->add_flag("--json", a->json, "Machine-readable output");
  cmd->callback([a] { run_plan(*a); });
}

}  // namespace quantlab::cli
