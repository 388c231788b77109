#include "analysis/sweep_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

namespace quantlab::analysis {

namespace {

using nlohmann::ordered_json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string megabytes(uint64_t bytes) { return fmt::format("{:.2f} MB", double(bytes) / 1e6); }
std::string pct(double x) { return std::isnan(x) ? "–" : fmt::format("{:.1f} %", x); }
std::string width_or_none(const std::optional<int>& bits) { return bits ? fmt::format("{}-bit", *bits) : "none"; }

// The weight-only retention measure (cosine, weight_retention.h), in percent for the chart.
double retention_pct(const SweepWidth& w) { return w.retention ? 100 * w.retention->cosine() : kNaN; }

std::string verdict_text(const SweepWidth& w, const std::string& baseline) {
  if (!w.result.ok) return "not measured";
  if (w.name == baseline) return "baseline";
  return w.comparison ? std::string(eval::verdict_name(w.comparison->verdict)) : "–";
}

// The plan's prediction for this width next to its measurement (null when there is none).
ordered_json width_plan_json(const SweepWidth& w) {
  if (!w.result.ok || !w.result.plan) return nullptr;
  const eval::PlanPrediction& p = *w.result.plan;
  const eval::PlanVsMeasured v = eval::plan_vs_measured(w.result);
  return {{"disk_bytes", p.disk_bytes()},
          {"disk_measured_over_predicted", v.disk_ratio},
          {"memory_bytes", p.memory_bytes()},
          {"memory_measured_over_predicted", v.memory_ratio},
          {"context", p.context},
          {"bytes_per_token", p.bytes_per_token},
          {"bandwidth_gb_per_s", p.bandwidth_gb_per_s},
          {"decode_tps_bound", p.decode_tps_bound()},
          {"decode_fraction_of_bound", v.decode_fraction_of_bound}};
}

ordered_json width_json(const SweepWidth& w, const std::string& baseline) {
  const auto& a = w.result.accuracy.overall;
  ordered_json j = {{"bits", w.bits},
                    {"kind", w.kind()},
                    {"keep_ratio", w.keep_ratio},
                    {"name", w.name},
                    {"model_dir", w.model_dir},
                    {"ok", w.result.ok},
                    {"reused", !w.benched_now},
                    {"disk_bytes", w.result.info.disk_bytes},
                    {"bits_per_weight", w.result.info.bits_per_weight},
                    {"accuracy_pct", a.pct()},
                    {"accuracy_wilson95_pct", {100 * a.wilson95.low, 100 * a.wilson95.high}},
                    {"decode_tps", eval::figures_of(w.result).decode_tps},
                    {"memory_bytes", w.result.memory.model_bytes()},
                    {"verdict", verdict_text(w, baseline)}};
  if (w.target_bpw > 0) j["target_bpw"] = w.target_bpw;
  if (!w.recipe.empty()) j["recipe"] = w.recipe;
  if (!w.result.ok) j["error"] = w.result.error;
  j["plan"] = width_plan_json(w);
  if (w.result.ok && !w.result.plan)
    j["plan_warning"] = w.result.plan_warning.empty() ? "not recorded with this result" : w.result.plan_warning;
  if (w.retention)
    j["retention"] = {{"cosine", w.retention->cosine()},
                      {"kept", w.retention->kept()},
                      {"erased_share", w.retention->erased_share()},
                      {"delta_in_steps", w.retention->delta_in_steps()}};
  if (w.comparison) j["failing"] = w.comparison->failing;
  return j;
}

void table_markdown(const SweepResult& r, std::string& md) {
  md += "| width | disk | bits/weight | accuracy (95 % CI) | decode tok/s | memory | fine-tune retention (weight cosine) | erased codes | verdict | rules failed |\n"
        "|---:|---:|---:|---|---:|---:|---:|---:|---|---|\n";
  for (const auto& w : r.widths) {
    const auto& a = w.result.accuracy.overall;
    const std::string accuracy = w.result.ok ? fmt::format("{:.0f} % ({}/{}; {:.0f}–{:.0f} %)", a.pct(), a.correct, a.total,
                                                           100 * a.wilson95.low, 100 * a.wilson95.high)
                                             : "error: " + w.result.error;
    md += fmt::format("| {} | {} | {:.2f} | {} | {:.1f} | {} | {} | {} | {} | {} |\n", w.name,
                      megabytes(w.result.info.disk_bytes), w.result.info.bits_per_weight, accuracy,
                      eval::figures_of(w.result).decode_tps, megabytes(w.result.memory.model_bytes()), w.retention ? fmt::format("{:.3f}", w.retention->cosine()) : "–",
                      w.retention ? pct(100 * w.retention->erased_share()) : "–", verdict_text(w, r.baseline),
                      w.comparison ? fmt::format("{}", fmt::join(w.comparison->failing, "; ")) : "");
  }
}

std::string plan_row(const SweepWidth& w) {
  if (!w.result.ok) return fmt::format("| {} | not measured | | | | | | | | |\n", w.name);
  if (!w.result.plan)
    return fmt::format("| {} | no plan: {} | | | | | | | | |\n", w.name,
                       w.result.plan_warning.empty() ? "not recorded with this result" : w.result.plan_warning);
  const eval::PlanPrediction& p = *w.result.plan;
  const eval::PlanVsMeasured v = eval::plan_vs_measured(w.result);
  const double bound = p.decode_tps_bound();
  return fmt::format("| {} | {} | {} | {:.3f} | {} | {} | {:.3f} | {} | {:.1f} | {} |\n", w.name,
                     megabytes(p.disk_bytes()), megabytes(w.result.info.disk_bytes), v.disk_ratio,
                     megabytes(p.memory_bytes()), megabytes(w.result.memory.model_bytes()), v.memory_ratio,
                     bound > 0 ? fmt::format("{:.1f}", bound) : "n/a", eval::figures_of(w.result).decode_tps,
                     bound > 0 ? pct(100 * v.decode_fraction_of_bound) : "n/a");
}

void plan_markdown(const SweepResult& r, std::string& md) {
  const auto& m = r.bench.machine;
  md += "\n## Plan vs measured\n\n";
  md += fmt::format(
      "`quantlab plan`'s prediction for each width's directory, at the bench session's context; decode bound = "
      "{} / weight bytes read per token.\n\n",
      m.bandwidth_gb_per_s > 0 ? fmt::format("{:.1f} GB/s ({})", m.bandwidth_gb_per_s, m.bandwidth_source)
                               : "the bandwidth (not measured)");
  md += "| width | disk plan | disk measured | measured/plan | memory plan | memory measured | measured/plan | "
        "decode bound tok/s | decode measured tok/s | % of plan bound |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& w : r.widths) md += plan_row(w);
}

void notes_markdown(const SweepResult& r, std::string& md) {
  std::vector<std::string> notes, reused;
  for (const auto& w : r.widths) {
    if (w.comparison)
      for (const auto& text : w.comparison->warnings) notes.push_back(w.name + ": " + text);
    if (!w.benched_now) reused.push_back(w.name);
  }
  if (!reused.empty())
    notes.push_back(fmt::format("reused from an earlier run of this sweep (same settings): {}", fmt::join(reused, ", ")));
  if (notes.empty()) return;
  md += "\n## Notes\n\n";
  for (const auto& text : notes) md += "- " + text + "\n";
}

// The points of the widths `member` selects (by default the uniform unpruned widths).
ChartSeries series(const SweepResult& r, const std::string& name, const std::string& color, bool dashed, bool by_disk,
                   double (*value)(const SweepWidth&),
                   const std::function<bool(const SweepWidth&)>& member = [](const SweepWidth& w) {
                     return w.uniform() && w.keep_ratio == 1.0;
                   }) {
  ChartSeries s{name, color, {}, dashed};
  for (const auto& w : r.widths) {
    if (!w.result.ok || !member(w)) continue;
    const double x = by_disk ? double(w.result.info.disk_bytes) / 1e6 : double(w.bits);
    s.points.push_back({x, value(w), by_disk ? w.name : ""});
  }
  return s;
}

ordered_json smallest_json(const SweepResult& r, const std::optional<size_t>& i) {
  if (!i) return nullptr;
  const SweepWidth& w = r.widths[*i];
  return {{"name", w.name}, {"kind", w.kind()}, {"disk_bytes", w.result.info.disk_bytes},
          {"bits_per_weight", w.result.info.bits_per_weight}};
}

std::string smallest_text(const SweepResult& r, const std::optional<size_t>& i) {
  if (!i) return "none";
  const SweepWidth& w = r.widths[*i];
  return fmt::format("{} ({}, {:.2f} bits per weight, {})", w.name, w.kind(), w.result.info.bits_per_weight,
                     megabytes(w.result.info.disk_bytes));
}

}  // namespace

ordered_json sweep_json(const SweepResult& r, const SweepOptions& o) {
  ordered_json widths = ordered_json::array();
  for (const auto& w : r.widths) widths.push_back(width_json(w, r.baseline));
  ordered_json j = {{"schema", "quantlab.sweep/1"},
                    {"fused", o.fused_dir},
                    {"base", o.base_dir.empty() ? ordered_json() : ordered_json(o.base_dir)},
                    {"group_size", o.group_size},
                    {"baseline", r.baseline},
                    {"lowest_minimum_viable", r.lowest_minimum_viable ? ordered_json(*r.lowest_minimum_viable) : ordered_json()},
                    {"lowest_optimal", r.lowest_optimal ? ordered_json(*r.lowest_optimal) : ordered_json()},
                    {"smallest_minimum_viable", smallest_json(r, r.smallest_minimum_viable)},
                    {"smallest_optimal", smallest_json(r, r.smallest_optimal)},
                    {"seconds", r.seconds},
                    {"widths", widths}};
  j["bench"] = eval::to_json(r.bench);
  return j;
}

std::vector<ChartPanel> sweep_chart_panels(const SweepResult& r) {
  const bool with_retention = !r.widths.empty() && r.widths.front().retention.has_value();
  std::vector<ChartPanel> panels;
  for (bool by_disk : {false, true}) {
    ChartPanel p;
    p.title = by_disk ? "against disk size" : "against bits";
    p.x_label = by_disk ? "disk size (MB)" : "bits per weight (quantization width)";
    p.y_label = "percent";
    p.x_reversed = !by_disk;
    p.y_min = 0;
    p.y_max = 105;
    const auto& c = r.bench.settings.criteria;
    for (const auto& level : {c.minimum_viable.accuracy_min_pct, c.optimal.accuracy_min_pct})
      if (level) p.y_guides.push_back(*level);
    p.series.push_back(series(r, "accuracy", "#1f77b4", false, by_disk,
                              [](const SweepWidth& w) { return w.result.accuracy.overall.pct(); }));
    // Pruned grids (issue 16): one accuracy series per share of experts kept, so "8-bit with half the
    // experts" and "4-bit with all" stand at their disk sizes side by side.
    const char* colors[] = {"#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
    std::vector<double> ratios;
    for (const auto& w : r.widths)
      if (w.keep_ratio < 1 && std::find(ratios.begin(), ratios.end(), w.keep_ratio) == ratios.end())
        ratios.push_back(w.keep_ratio);
    for (size_t i = 0; i < ratios.size(); ++i)
      p.series.push_back(series(r, fmt::format("accuracy, {:.0f} % experts", 100 * ratios[i]), colors[i % 4], false,
                                by_disk, [](const SweepWidth& w) { return w.result.accuracy.overall.pct(); },
                                [ratio = ratios[i]](const SweepWidth& w) { return w.keep_ratio == ratio; }));
    // Mixed plans and recipes (issue 15) have no single width: they stand on the disk-size axis only,
    // beside the uniform widths.
    const auto kind_series = [&](const char* label, const char* color, std::string_view kind) {
      ChartSeries s = series(r, label, color, false, true, [](const SweepWidth& w) { return w.result.accuracy.overall.pct(); },
                             [kind](const SweepWidth& w) { return w.kind() == kind; });
      std::sort(s.points.begin(), s.points.end(), [](const auto& a, const auto& b) { return a.x < b.x; });
      if (by_disk && !s.points.empty()) p.series.push_back(std::move(s));
    };
    // Other roundings of the same widths (issue 21) on both axes, beside round-to-nearest.
    const char* method_colors[] = {"#bcbd22", "#7f7f7f"};
    size_t method_index = 0;
    for (const std::string_view method : {"gptq", "delta"}) {
      ChartSeries s = series(r, fmt::format("accuracy, {} rounding", method), method_colors[method_index++ % 2], false,
                             by_disk, [](const SweepWidth& w) { return w.result.accuracy.overall.pct(); },
                             [method](const SweepWidth& w) { return w.method == method; });
      if (!s.points.empty()) p.series.push_back(std::move(s));
    }
    kind_series("accuracy, mixed plans (allocated)", "#17becf", "mixed");
    kind_series("accuracy, mlx-lm recipes", "#e377c2", "recipe");
    if (with_retention)
      p.series.push_back(series(r, "fine-tune retention (weight cosine)", "#d62728", true, by_disk, retention_pct));
    panels.push_back(std::move(p));
  }
  return panels;
}

std::string sweep_chart_svg(const SweepResult& r) {
  return render_svg(sweep_chart_panels(r), "Accuracy and fine-tune retention by quantization width");
}

std::string sweep_markdown(const SweepResult& r, const SweepOptions& o) {
  const auto& s = r.bench.settings;
  std::string md = fmt::format("# Sweep of `{}`\n\n", o.fused_dir);
  md += fmt::format("- suite: `{}` ({} queries){}\n", s.suite, s.suite_queries,
                    s.tools.empty() ? "" : fmt::format(", tools `{}`", s.tools));
  md += fmt::format("- widths: {} (group size {}), baseline {}, criteria: {}\n", r.widths.size(), o.group_size, r.baseline,
                    s.criteria.source);
  md += fmt::format("- max tokens {}, runs {}{}\n\n", s.max_tokens, s.runs,
                    o.base_dir.empty() ? "; no --base given, so no weight-only retention"
                                       : fmt::format("; retention against the base `{}`", o.base_dir));
  md += fmt::format("**Lowest width that is minimum viable: {}. Lowest width that is optimal: {}.**\n\n",
                    width_or_none(r.lowest_minimum_viable), width_or_none(r.lowest_optimal));
  const bool other_kinds = std::any_of(r.widths.begin(), r.widths.end(), [](const SweepWidth& w) {
    return !w.uniform() || w.keep_ratio < 1;
  });
  if (other_kinds)
    md += fmt::format("**Smallest configuration of any kind that is minimum viable: {}. That is optimal: {}.**\n\n",
                      smallest_text(r, r.smallest_minimum_viable), smallest_text(r, r.smallest_optimal));
  md += "![accuracy and retention against bits and disk size](chart.svg)\n\n";
  table_markdown(r, md);
  plan_markdown(r, md);
  notes_markdown(r, md);
  return md;
}

}  // namespace quantlab::analysis
