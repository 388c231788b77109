#include "analysis/mixed_quantize.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <optional>

#include "analysis/calibration.h"
#include "analysis/module_gain.h"
#include "analysis/sequential_calibration.h"
#include "analysis/vocabulary_prior.h"
#include "core/error.h"
#include "eval/suite.h"
#include "quant/plan_file.h"

namespace quantlab::analysis {

namespace fs = std::filesystem;

std::pair<int, int> parse_bits_group(const std::string& text, const std::string& flag) {
  const size_t colon = text.find(':');
  int bits = 0, group = 0;
  const auto parse = [](std::string_view s, int& v) {
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return !s.empty() && ec == std::errc() && p == s.data() + s.size();
  };
  if (colon == std::string::npos || !parse(std::string_view(text).substr(0, colon), bits) ||
      !parse(std::string_view(text).substr(colon + 1), group))
    fail(ErrorKind::kUsage, "{} {}: expected BITS:GROUP (e.g. 8:64)", flag, text);
  return {bits, group};
}

uint64_t resolve_budget(const Sensitivity& s, const BudgetSpec& b, std::string* description) {
  const int forms = b.target_bpw.has_value() + b.max_bytes.has_value() + b.smaller_than.has_value();
  if (forms != 1)
    fail(ErrorKind::kUsage, "give exactly one budget: --target-bpw X, --max-bytes N or --smaller-than BITS:GROUP --by PCT");
  if (b.target_bpw) {
    if (!(*b.target_bpw > 0)) fail(ErrorKind::kUsage, "--target-bpw {}: must be positive", *b.target_bpw);
    *description = fmt::format("{} bits per weight", *b.target_bpw);
    return static_cast<uint64_t>(*b.target_bpw * static_cast<double>(total_parameters(s)) / 8.0);
  }
  if (b.max_bytes) {
    *description = fmt::format("{} bytes", *b.max_bytes);
    return *b.max_bytes;
  }
  if (!(b.by_pct > 0 && b.by_pct < 100)) fail(ErrorKind::kUsage, "--by {}: a percentage between 0 and 100", b.by_pct);
  const uint64_t reference = uniform_bytes(s, b.smaller_than->first, b.smaller_than->second);
  *description = fmt::format("{} % smaller than uniform {}-bit g{} ({} bytes)", b.by_pct, b.smaller_than->first,
                             b.smaller_than->second, reference);
  return static_cast<uint64_t>(static_cast<double>(reference) * (1.0 - b.by_pct / 100.0));
}

namespace {

// A scratch directory for the statistics, removed however the run ends.
struct WorkDir {
  fs::path path;
  WorkDir() : path(fs::temp_directory_path() / fmt::format("quantlab-mixed-{}", getpid())) { fs::create_directories(path); }
  ~WorkDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

}  // namespace

namespace {

// The suite's queries alternately into two files (first, third, ... and second, fourth, ...): inputs to
// fit the rounding on and inputs to measure its error on. Nullopt for a suite of one query. The suite is
// checked whole first, so a bad line is reported in the user's file, not in a half.
std::optional<std::pair<std::string, std::string>> split_suite(const std::string& suite, const std::string& tools_path,
                                                                const fs::path& dir) {
  const std::optional<eval::ToolSet> tools =
      tools_path.empty() ? std::nullopt : std::optional<eval::ToolSet>(eval::load_tools(tools_path));
  eval::load_suite(suite, tools ? &*tools : nullptr);
  std::ifstream in(suite);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (line.find_first_not_of(" \t\r") != std::string::npos) lines.push_back(line);
  if (lines.size() < 2) return std::nullopt;
  const std::pair<std::string, std::string> out{(dir / "fit.jsonl").string(), (dir / "held-out.jsonl").string()};
  std::ofstream fit(out.first), held_out(out.second);
  for (size_t i = 0; i < lines.size(); ++i) (i % 2 == 0 ? fit : held_out) << lines[i] << "\n";
  if (!fit.flush() || !held_out.flush()) fail(ErrorKind::kIo, "{}: cannot write the calibration's halves", dir.string());
  return out;
}

// The allocation's modules rounded with a calibrated method.
size_t count_calibrated(const Sensitivity& s, const Allocation& a) {
  size_t n = 0;
  for (size_t i = 0; i < s.tensors.size(); ++i) n += s.tensors[i].candidates[a.choice[i]].method != quant::RoundingMethod::kRtn;
  return n;
}

}  // namespace

Sensitivity calibrated_sensitivity(const MixedQuantizeOptions& o, ThreadPool& pool, quant::RoundingOptions* statistics) {
  if (o.suite_path.empty()) fail(ErrorKind::kUsage, "--target-bpw (and the other budgets) need --calibration SUITE");
  const WorkDir work;
  CalibrationOptions co;
  co.model_dir = o.fused_dir;
  co.suite_path = o.suite_path;
  co.tools_path = o.tools_path;
  co.max_tokens = o.max_tokens;
  co.show_progress = o.show_progress;
  const bool calibrated = quant::any_calibrated(o.methods);
  co.second_moments = calibrated;
  SensitivityOptions so;
  so.stats_path = (work.path / "stats.safetensors").string();
  // With calibrated methods every candidate is rounded on one half of the suite and measured on the
  // other: GPTQ's error under the very moments it minimised is optimistic, by far when a module saw
  // fewer tokens than it has columns (docs/rounding.md). The rounding of the model itself then uses both.
  const auto halves = calibrated ? split_suite(o.suite_path, o.tools_path, work.path) : std::nullopt;
  if (halves) {
    co.suite_path = halves->first;
    CalibrationStats fit = calibrate(co, pool);
    co.suite_path = halves->second;
    const CalibrationStats held_out = calibrate(co, pool);
    so.held_out_stats_path = (work.path / "held-out.safetensors").string();
    write_stats(fit, so.stats_path);
    write_stats(held_out, so.held_out_stats_path);
    CalibrationStats both = merge_stats(std::move(fit), held_out);
    if (statistics) take_rounding_statistics(both, *statistics);
  } else {
    CalibrationStats stats = calibrate(co, pool);
    write_stats(stats, so.stats_path);
    if (calibrated && statistics) take_rounding_statistics(stats, *statistics);
  }
  if (calibrated && statistics) add_vocabulary_prior(*statistics, o.fused_dir, pool);  // halves exist only if calibrated
  so.fused_dir = o.fused_dir;
  so.base_dir = o.base_dir;
  so.adapter_dir = o.adapter_dir;
  so.bits = o.bits;
  so.group_sizes = o.group_sizes;
  so.methods = o.methods;
  so.gptq = o.rounding.gptq;
  so.delta_weight = o.rounding.delta_weight;
  so.vocab_prior = o.rounding.vocab_prior;
  so.show_progress = o.show_progress;
  Sensitivity sens = analyze_sensitivity(so, pool);
  if (o.measure_gains) {
    GainOptions go;
    go.fused_dir = o.fused_dir;
    go.suite_path = o.suite_path;
    go.tools_path = o.tools_path;
    go.max_tokens = std::min<size_t>(o.max_tokens, 16);
    go.show_progress = o.show_progress;
    measure_gains(go, sens, pool);
  }
  return sens;
}

MixedQuantizeResult quantize_allocated(const Sensitivity& sens, const MixedQuantizeOptions& o, ThreadPool& pool) {
  if (fs::exists(o.out_dir) && !o.overwrite)
    fail(ErrorKind::kUsage, "{} exists; pass --overwrite to replace it", o.out_dir);
  MixedQuantizeResult r;
  const uint64_t budget = resolve_budget(sens, o.budget, &r.budget);
  const Objective objective = o.objective.value_or(Objective::kOutput);
  r.allocation = allocate(sens, budget, objective, o.methods);
  const nlohmann::ordered_json plan = allocation_plan_json(sens, r.allocation, objective, r.budget);

  const size_t calibrated = count_calibrated(sens, r.allocation);
  if (calibrated > 0 && o.rounding.moments.empty() && o.rounding.routed_inputs.empty())
    fail(ErrorKind::kUsage, "the allocation rounds {} modules with gptq or delta, but no second moments were given "
         "to round them with (quant::RoundingOptions::moments)", calibrated);
  quant::QuantizeOptions q;
  q.plan = quant::plan_options_from_json(plan, "the allocated plan");
  q.plan.dtype = o.dtype;
  q.overwrite = o.overwrite;
  q.show_progress = o.show_progress;
  q.write_plan_file = true;
  q.plan_record = plan;
  q.rounding = o.rounding;
  if (o.sequential && calibrated > 0) {
    CalibrationOptions c;  // the whole suite, as calibrated_sensitivity's merged statistics cover it
    c.model_dir = o.fused_dir;
    c.suite_path = o.suite_path;
    c.tools_path = o.tools_path;
    c.max_tokens = o.max_tokens;
    c.show_progress = o.show_progress;
    q.rounding = with_sequential_statistics(c, q.plan, o.rounding, pool);
  }
  r.report = quant::quantize_model(o.fused_dir, o.out_dir, q, pool);
  return r;
}

MixedQuantizeResult quantize_to_budget(const MixedQuantizeOptions& o, ThreadPool& pool) {
  // quantize_allocated checks this too, but only after calibration's forward passes: refuse first.
  if (fs::exists(o.out_dir) && !o.overwrite)
    fail(ErrorKind::kUsage, "{} exists; pass --overwrite to replace it", o.out_dir);
  MixedQuantizeOptions with_statistics = o;
  const Sensitivity sens = calibrated_sensitivity(o, pool, &with_statistics.rounding);
  return quantize_allocated(sens, with_statistics, pool);
}

}  // namespace quantlab::analysis
