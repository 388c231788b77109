#include "eval/report_schema.h"

#include <cmath>
#include <unordered_map>

#include "core/error.h"

namespace quantlab::eval {

namespace {

template <typename F>
Summary over_runs(const std::vector<SpeedRun>& runs, F value) {
  std::vector<double> v;
  for (const SpeedRun& r : runs) v.push_back(value(r));
  return summarize(std::move(v));
}

}  // namespace

Summary SpeedResult::prefill_tps() const {
  return over_runs(runs, [](const SpeedRun& r) { return r.prefill_tps(); });
}
Summary SpeedResult::decode_tps() const {
  return over_runs(runs, [](const SpeedRun& r) { return r.decode_tps(); });
}
Summary SpeedResult::mean_query_seconds() const {
  return over_runs(runs, [](const SpeedRun& r) { return r.mean_query_seconds; });
}
Summary SpeedResult::median_query_seconds() const {
  return over_runs(runs, [](const SpeedRun& r) { return r.median_query_seconds; });
}

std::vector<bool> ModelResult::correct_by_query() const {
  std::vector<bool> v;
  for (const QueryResult& q : queries) v.push_back(q.score.correct);
  return v;
}

const ModelResult* BenchResults::find(std::string_view name) const {
  for (const ModelResult& m : models)
    if (m.name == name) return &m;
  return nullptr;
}

namespace {

// 1.4826 x the median absolute deviation: the standard deviation for normal data, robust to outliers.
double robust_spread(const std::vector<double>& values) {
  const double median = summarize(values).median;
  std::vector<double> deviations;
  for (double v : values) deviations.push_back(std::abs(v - median));
  return 1.4826 * summarize(std::move(deviations)).median;
}

}  // namespace

ModelFigures figures_of(const ModelResult& r) {
  ModelFigures f;
  f.name = r.name;
  f.accuracy_pct = r.accuracy.overall.pct();
  f.disk_bytes = r.info.disk_bytes;
  f.memory_bytes = r.memory.model_bytes();
  // The median over runs and a spread that ignores outliers: one run slowed by a background job
  // should neither decide a speed rule nor make every ratio look uncertain.
  std::vector<double> decode;
  for (const SpeedRun& run : r.speed.runs) decode.push_back(run.decode_tps());
  f.decode_tps = summarize(decode).median;
  f.decode_tps_rel_spread = f.decode_tps > 0 ? robust_spread(decode) / f.decode_tps : 0.0;
  f.runs = static_cast<int>(r.speed.runs.size());
  f.bits = r.info.bits;
  f.group_size = r.info.group_size;
  f.moe = r.info.experts > 0;
  // Every local model has files and a session; only a server without @DIR leaves these at 0.
  f.disk_measured = r.info.disk_bytes > 0;
  f.memory_measured = r.memory.model_bytes() > 0;
  return f;
}

PlanVsMeasured plan_vs_measured(const ModelResult& r) {
  QL_CHECK(r.plan.has_value(), "model '{}' has no plan", r.name);
  const PlanPrediction& p = *r.plan;
  const auto ratio = [](double measured, double predicted) { return predicted > 0 ? measured / predicted : 0.0; };
  return {ratio(static_cast<double>(r.info.disk_bytes), static_cast<double>(p.disk_bytes())),
          ratio(static_cast<double>(r.memory.model_bytes()), static_cast<double>(p.memory_bytes())),
          ratio(figures_of(r).decode_tps, p.decode_tps_bound())};
}

namespace {

// Candidate outcomes in the baseline's query order, matched by id (both ran the same suite).
std::vector<bool> paired_outcomes(const ModelResult& baseline, const ModelResult& candidate) {
  std::unordered_map<std::string, bool> by_id;
  for (const QueryResult& q : candidate.queries) by_id[q.id] = q.score.correct;
  std::vector<bool> v;
  for (const QueryResult& q : baseline.queries) {
    const auto it = by_id.find(q.id);
    if (it == by_id.end()) fail(ErrorKind::kInternal, "model '{}' has no result for query '{}'", candidate.name, q.id);
    v.push_back(it->second);
  }
  return v;
}

}  // namespace

void add_comparisons(BenchResults& results) {
  results.comparisons.clear();
  const ModelResult* baseline = results.find(results.settings.baseline);
  if (!baseline) fail(ErrorKind::kUsage, "--baseline '{}' is not one of the models", results.settings.baseline);
  if (!baseline->ok) return;
  const ModelFigures base = figures_of(*baseline);
  const std::vector<bool> base_correct = baseline->correct_by_query();
  for (const ModelResult& m : results.models) {
    if (&m == baseline || !m.ok) continue;
    const std::vector<bool> cand_correct = paired_outcomes(*baseline, m);
    results.comparisons.push_back(
        compare_models(results.settings.criteria, base, figures_of(m), compare_paired(base_correct, cand_correct)));
  }
}

}  // namespace quantlab::eval
