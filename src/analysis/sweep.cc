#include "analysis/sweep.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "analysis/calibration.h"
#include "analysis/expert_profile.h"
#include "analysis/mixed_quantize.h"
#include "analysis/sensitivity.h"
#include "analysis/sweep_report.h"
#include "analysis/vocabulary_prior.h"
#include "io/model_config.h"
#include "quant/prune.h"
#include "core/error.h"
#include "io/output_dir.h"
#include "quantlab/version.h"
#include "core/mapped_file.h"
#include "quant/quantizer.h"
#include "quant/recipe.h"
#include "quant/rounding.h"

namespace quantlab::analysis {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

std::string_view SweepWidth::kind() const {
  if (method != "rtn") return method;
  if (target_bpw > 0) return "mixed";
  if (!recipe.empty()) return "recipe";
  return keep_ratio < 1 ? "pruned" : "uniform";
}

namespace {

int ratio_pct(double ratio) { return static_cast<int>(std::lround(100 * ratio)); }

std::string width_key(const SweepWidth& w, int group) {
  if (w.target_bpw > 0) return fmt::format("mixed-{}bpw-g{}", w.target_bpw, group);
  if (!w.recipe.empty()) return fmt::format("recipe-{}-g{}", w.recipe, group);
  if (w.method != "rtn") return fmt::format("q{}-g{}-{}", w.bits, group, w.method);
  return w.keep_ratio < 1 ? fmt::format("q{}-g{}-e{}", w.bits, group, ratio_pct(w.keep_ratio))
                          : fmt::format("q{}-g{}", w.bits, group);
}

std::vector<double> sweep_ratios(const SweepOptions& o) {
  std::vector<double> ratios = o.keep_ratios;
  for (double r : ratios)
    if (!(r > 0 && r <= 1)) fail(ErrorKind::kUsage, "--keep-ratio {}: each share must be in (0, 1]", r);
  if (std::find(ratios.begin(), ratios.end(), 1.0) == ratios.end()) ratios.push_back(1.0);  // the baseline's
  std::sort(ratios.rbegin(), ratios.rend());
  ratios.erase(std::unique(ratios.begin(), ratios.end()), ratios.end());
  return ratios;
}

// The fused model pruned to `ratio` of its experts by saliency on the sweep's suite (the profile is
// made once and kept in OUT/experts.json).
std::string pruned_source(const SweepOptions& o, double ratio, ThreadPool& pool) {
  const fs::path out(o.out_dir);
  const std::string dir = (out / "models" / fmt::format("pruned-e{}", ratio_pct(ratio))).string();
  if (fs::exists(fs::path(dir) / "config.json")) return dir;
  const std::string profile_path = (out / "experts.json").string();
  if (!fs::exists(profile_path)) {
    ExpertProfileOptions po;
    po.model_dir = o.fused_dir;
    po.suite_path = o.bench.suite;
    po.tools_path = o.bench.tools;
    po.max_tokens = o.bench.max_tokens;
    po.show_progress = o.show_progress;
    io::write_file_atomically(profile_path, profile_json(profile_experts(po, pool)).dump(1) + "\n");
  }
  const ExpertProfile p = read_profile(profile_path);
  const auto keep = std::max<size_t>(1, static_cast<size_t>(std::lround(ratio * static_cast<double>(p.experts))));
  quant::prune_experts(o.fused_dir, dir, choose_experts(p, keep, PruneRanking::kSaliency), {});
  return dir;
}

std::vector<int> sweep_widths(const SweepOptions& o) {
  std::vector<int> bits = o.bits;
  if (std::find(bits.begin(), bits.end(), o.baseline_bits) == bits.end()) bits.push_back(o.baseline_bits);
  std::sort(bits.rbegin(), bits.rend());
  bits.erase(std::unique(bits.begin(), bits.end()), bits.end());
  return bits;
}

MixedQuantizeOptions mixed_options(const SweepOptions& o) {
  MixedQuantizeOptions m;
  m.fused_dir = o.fused_dir;
  m.base_dir = o.base_dir;
  m.suite_path = o.calibration_suite.empty() ? o.bench.suite : o.calibration_suite;
  m.tools_path = o.bench.tools;
  m.group_sizes = {o.group_size};
  m.max_tokens = std::min<size_t>(o.bench.max_tokens, 64);
  m.show_progress = o.show_progress;
  return m;
}

// The calibrated sensitivity with measured gains, made once per sweep (OUT/sensitivity.json).
const Sensitivity& sweep_sensitivity(const SweepOptions& o, std::optional<Sensitivity>& cache, ThreadPool& pool) {
  if (cache) return *cache;
  const std::string path = (fs::path(o.out_dir) / "sensitivity.json").string();
  if (fs::exists(path)) {
    cache = read_sensitivity(path);
  } else {
    cache = calibrated_sensitivity(mixed_options(o), pool);
    io::write_file_atomically(path, sensitivity_json(*cache).dump(1) + "\n");
  }
  return *cache;
}

// The statistics GPTQ and delta rounding need, calibrated once per sweep (and only when a point still
// has to be quantized): second moments of every Linear's inputs on the calibration suite.
const quant::RoundingOptions& sweep_moments(const SweepOptions& o, std::optional<quant::RoundingOptions>& cache,
                                            ThreadPool& pool) {
  if (cache) return *cache;
  CalibrationOptions c;
  c.model_dir = o.fused_dir;
  c.suite_path = o.calibration_suite.empty() ? o.bench.suite : o.calibration_suite;
  c.tools_path = o.bench.tools;
  c.max_tokens = o.calibration_tokens;
  c.second_moments = true;
  c.show_progress = o.show_progress;
  CalibrationStats stats = calibrate(c, pool);
  cache.emplace();
  take_rounding_statistics(stats, *cache);
  add_vocabulary_prior(*cache, o.fused_dir, pool);
  return *cache;
}

struct SweepCaches {
  std::optional<Sensitivity> sensitivity;        // made on the first mixed point
  std::optional<quant::RoundingOptions> moments;  // made on the first gptq/delta point
};

void quantize_width(const SweepOptions& o, SweepWidth& w, SweepCaches& caches, ThreadPool& pool) {
  std::optional<Sensitivity>& sens = caches.sensitivity;
  if (fs::exists(fs::path(w.model_dir) / "config.json")) return;  // done by an earlier run
  w.quantized_now = true;
  if (w.target_bpw > 0) {
    MixedQuantizeOptions m = mixed_options(o);
    m.out_dir = w.model_dir;
    m.budget.target_bpw = w.target_bpw;
    m.overwrite = true;  // a directory without config.json is an interrupted write
    quantize_allocated(sweep_sensitivity(o, sens, pool), m, pool);
    return;
  }
  quant::QuantizeOptions q;
  q.plan.bits = w.recipe.empty() ? w.bits : 4;  // a recipe's global block is mlx-lm's default --q-bits
  q.plan.recipe = w.recipe;
  q.plan.group_size = o.group_size;
  q.show_progress = o.show_progress;
  if (w.method != "rtn") {
    q.rounding = sweep_moments(o, caches.moments, pool);
    q.rounding.method = quant::parse_rounding_method(w.method);
    q.rounding.base_dir = o.base_dir;
  }
  const std::string source = w.keep_ratio < 1 ? pruned_source(o, w.keep_ratio, pool) : o.fused_dir;
  quant::quantize_model(source, w.model_dir, q, pool);
}

// A stored result, when it was measured with the same settings.
std::optional<eval::ModelResult> stored_result(const fs::path& path, const ordered_json& settings) {
  if (!fs::exists(path)) return std::nullopt;
  ordered_json j;
  try {
    j = ordered_json::parse(read_text_file(path.string()));
  } catch (const ordered_json::exception& e) {  // bad syntax, and numbers beyond a double (406)
    fail_input("{}: not valid JSON ({}); delete it to measure this width again", path.string(), e.what());
  }
  if (!j.is_object() || j.value("settings", ordered_json()) != settings || !j.contains("result")) return std::nullopt;
  return eval::model_result_from_json(j["result"], path.string());
}

void bench_width(const SweepOptions& o, const ModelBencher& bench, SweepWidth& w) {
  const fs::path path = fs::path(o.out_dir) / "results" / (width_key(w, o.group_size) + ".json");
  const ordered_json settings = sweep_settings_json(o);
  if (auto stored = stored_result(path, settings)) {
    w.result = std::move(*stored);
    w.result.name = w.name;
    if (w.result.ok) return;  // a failed width is measured again
  }
  w.result = bench(w.name, w.model_dir);
  w.benched_now = true;
  const ordered_json record{{"settings", settings}, {"result", eval::to_json(w.result)}};
  io::write_file_atomically(path.string(), record.dump(2) + "\n");
}

void add_retention(const SweepOptions& o, SweepResult& r, ThreadPool& pool) {
  if (o.base_dir.empty()) return;
  // Weight retention compares the same tensors: unpruned widths only.
  WeightRetentionOptions wo;
  wo.base_dir = o.base_dir;
  wo.fused_dir = o.fused_dir;
  wo.bits.clear();
  std::vector<SweepWidth*> unpruned;
  for (auto& w : r.widths)
    if (w.keep_ratio == 1.0 && w.uniform()) wo.bits.push_back(w.bits), unpruned.push_back(&w);
  wo.group_size = o.group_size;
  wo.show_progress = o.show_progress;
  const WeightRetention wr = analyze_weight_retention(wo, pool);
  for (size_t i = 0; i < unpruned.size(); ++i) unpruned[i]->retention = wr.overall[i];
}

void add_verdicts(SweepResult& r) {
  eval::BenchResults& all = r.bench;
  all.models.clear();
  for (const auto& w : r.widths) all.models.push_back(w.result);
  eval::add_comparisons(all);
  for (auto& w : r.widths)
    for (const auto& c : all.comparisons)
      if (c.candidate == w.name) w.comparison = c;
  for (const auto& w : r.widths) {  // widths run high to low: the last one that passes is the lowest
    if (!w.comparison || w.keep_ratio < 1 || !w.uniform()) continue;
    if (w.comparison->verdict != eval::Verdict::kFailure) r.lowest_minimum_viable = w.bits;
    if (w.comparison->verdict == eval::Verdict::kOptimal) r.lowest_optimal = w.bits;
  }
  const auto smaller = [&r](const std::optional<size_t>& best, size_t i) {
    return !best || r.widths[i].result.info.disk_bytes < r.widths[*best].result.info.disk_bytes;
  };
  for (size_t i = 0; i < r.widths.size(); ++i) {
    const SweepWidth& w = r.widths[i];
    if (!w.comparison || !w.result.ok) continue;
    if (w.comparison->verdict != eval::Verdict::kFailure && smaller(r.smallest_minimum_viable, i))
      r.smallest_minimum_viable = i;
    if (w.comparison->verdict == eval::Verdict::kOptimal && smaller(r.smallest_optimal, i)) r.smallest_optimal = i;
  }
}

void add_mixed_points(const SweepOptions& o, SweepResult& r) {
  std::vector<double> targets = o.target_bpw;
  for (double t : targets)
    if (!(t > 0 && t <= 16)) fail(ErrorKind::kUsage, "--target-bpw {}: bits per weight must be in (0, 16]", t);
  std::sort(targets.rbegin(), targets.rend());
  targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
  for (double t : targets) {
    SweepWidth w;
    w.target_bpw = t;
    w.name = fmt::format("mixed {} bpw", t);
    r.widths.push_back(std::move(w));
  }
  for (const std::string& recipe : o.recipes) {
    quant::find_recipe(recipe);  // Error(kUsage) naming the known recipes
    SweepWidth w;
    w.recipe = recipe;
    w.name = recipe;
    r.widths.push_back(std::move(w));
  }
}

// Each rounding method besides round-to-nearest at every width, after the round-to-nearest widths.
void add_method_points(const SweepOptions& o, std::vector<SweepWidth>& points) {
  for (const std::string& method : o.methods) {
    const quant::RoundingMethod m = quant::parse_rounding_method(method);  // Error(kUsage) naming the known ones
    if (m == quant::RoundingMethod::kRtn) continue;  // the widths themselves
    if (m == quant::RoundingMethod::kDelta && o.base_dir.empty())
      fail(ErrorKind::kUsage, "--method delta needs --base BASE, the model the fine-tune started from");
    for (int bits : sweep_widths(o)) {
      SweepWidth w;
      w.bits = bits;
      w.method = std::string(quant::rounding_method_name(m));
      w.name = fmt::format("{}-bit {}", bits, w.method);
      points.push_back(std::move(w));
    }
  }
}

// Every point of the sweep, in its fixed order: widths (high to low) for each share of experts, then
// mixed budgets and recipes; each with its model directory under OUT/models.
std::vector<SweepWidth> sweep_points(const SweepOptions& o) {
  std::vector<SweepWidth> points;
  const std::vector<double> ratios = sweep_ratios(o);
  if (ratios.size() > 1 && !io::load_model_config(o.fused_dir).is_moe())
    fail(ErrorKind::kUsage, "--keep-ratio: {} is not a mixture-of-experts model", o.fused_dir);
  for (double ratio : ratios)
    for (int bits : sweep_widths(o)) {
      SweepWidth w;
      w.bits = bits;
      w.keep_ratio = ratio;
      w.name = ratio < 1 ? fmt::format("{}-bit, {} % experts", bits, ratio_pct(ratio)) : fmt::format("{}-bit", bits);
      points.push_back(std::move(w));
    }
  add_method_points(o, points);
  SweepResult mixed;
  add_mixed_points(o, mixed);  // validates --target-bpw and --recipe before anything is written
  for (SweepWidth& w : mixed.widths) points.push_back(std::move(w));
  for (auto& w : points) w.model_dir = (fs::path(o.out_dir) / "models" / width_key(w, o.group_size)).string();
  return points;
}

// A point's result as a shard measured it; a missing one is named (which shard did not run?).
void merged_result(const SweepOptions& o, SweepWidth& w) {
  const fs::path path = fs::path(o.out_dir) / "results" / (width_key(w, o.group_size) + ".json");
  auto stored = stored_result(path, sweep_settings_json(o));
  if (!stored) fail_input("sweep merge: no result for {} ({}) with these settings in the shards", w.name, path.string());
  w.result = std::move(*stored);
  w.result.name = w.name;
}

}  // namespace

std::vector<std::string> sweep_point_keys(const SweepOptions& o) {
  std::vector<std::string> keys;
  for (const SweepWidth& w : sweep_points(o)) keys.push_back(width_key(w, o.group_size));
  return keys;
}

ordered_json sweep_settings_json(const SweepOptions& o) {
  const eval::BenchSettings& b = o.bench;
  return {{"fused", fs::absolute(o.fused_dir).lexically_normal().string()},
          {"group_size", o.group_size},
          {"suite", fs::absolute(b.suite).lexically_normal().string()},
          {"tools", b.tools.empty() ? "" : fs::absolute(b.tools).lexically_normal().string()},
          {"max_tokens", b.max_tokens},
          {"runs", b.runs},
          {"thinking", b.thinking}};
}

SweepResult run_sweep(const SweepOptions& o, const ModelBencher& bench, ThreadPool& pool) {
  const auto start = std::chrono::steady_clock::now();
  if (o.out_dir.empty()) fail(ErrorKind::kUsage, "sweep needs --out DIR");
  if (!fs::is_directory(o.fused_dir)) fail(ErrorKind::kIo, "{}: not a model directory", o.fused_dir);
  QL_CHECK(o.shard_index >= 1 && o.shard_index <= o.shard_count, "shard {}/{}", o.shard_index, o.shard_count);
  SweepResult r;
  r.baseline = fmt::format("{}-bit", o.baseline_bits);
  r.bench.quantlab_version = std::string(kQuantlabVersion);
  r.bench.created_utc = o.created_utc;
  r.bench.machine = o.machine;
  r.bench.settings = o.bench;
  r.bench.settings.baseline = r.baseline;
  r.widths = sweep_points(o);
  fs::create_directories(fs::path(o.out_dir) / "models");
  fs::create_directories(fs::path(o.out_dir) / "results");
  SweepCaches caches;
  for (size_t i = 0; i < r.widths.size(); ++i) {
    SweepWidth& w = r.widths[i];
    if (o.merge_only) {
      merged_result(o, w);
      continue;
    }
    if (i % o.shard_count != o.shard_index - 1) continue;  // another shard's point
    quantize_width(o, w, caches, pool);
    bench_width(o, bench, w);
  }
  if (o.shard_count > 1) return r;  // a shard: `sweep merge` reports on all of them
  add_retention(o, r, pool);
  add_verdicts(r);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.bench.total_seconds = r.seconds;
  const fs::path out(o.out_dir);
  io::write_file_atomically((out / "results.json").string(), sweep_json(r, o).dump(2) + "\n");
  io::write_file_atomically((out / "chart.svg").string(), sweep_chart_svg(r));
  io::write_file_atomically((out / "report.md").string(), sweep_markdown(r, o));
  return r;
}

}  // namespace quantlab::analysis
