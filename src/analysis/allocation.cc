#include "analysis/allocation.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <queue>

#include "core/error.h"
#include "quant/plan_file.h"

namespace quantlab::analysis {

namespace {

// The candidates the allocation may choose for `t`: those rounded with one of `methods` (all when it is
// empty), or its round-to-nearest ones when it has none of those (a router, an embedding table).
std::vector<size_t> allowed_candidates(const TensorSensitivity& t, const std::vector<quant::RoundingMethod>& methods) {
  std::vector<size_t> allowed, nearest;
  for (size_t i = 0; i < t.candidates.size(); ++i) {
    if (t.candidates[i].method == quant::RoundingMethod::kRtn) nearest.push_back(i);
    if (methods.empty() || std::find(methods.begin(), methods.end(), t.candidates[i].method) != methods.end())
      allowed.push_back(i);
  }
  return allowed.empty() ? nearest : allowed;
}

// Error(kUsage) when the sensitivity has no candidate of a method the allocation is restricted to.
void check_methods_measured(const Sensitivity& s, const std::vector<quant::RoundingMethod>& methods) {
  for (quant::RoundingMethod m : methods) {
    bool measured = false;
    for (const auto& t : s.tensors)
      for (const auto& c : t.candidates) measured = measured || c.method == m;
    if (!measured)
      fail(ErrorKind::kUsage, "--method {}: the sensitivity of {} has no candidate rounded with it (measure it with "
           "`quantlab sensitivity --method`)", quant::rounding_method_name(m), s.model_dir);
  }
}

// A tensor's candidates among `order` on the lower convex hull of (bytes, error), smallest first. Of
// candidates with the same bytes (one width rounded by several methods) only the lowest error can be on it.
std::vector<size_t> lower_hull(const TensorSensitivity& t, const std::vector<double>& err, std::vector<size_t> order) {
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto& x = t.candidates[a];
    const auto& y = t.candidates[b];
    return x.bytes != y.bytes ? x.bytes < y.bytes : err[a] < err[b];
  });
  std::vector<size_t> hull;
  for (size_t i : order) {
    if (!hull.empty() && err[i] >= err[hull.back()]) continue;  // more bytes, no less error: dominated
    // Drop the last point while it lies on or above the segment from the one before it to i.
    while (hull.size() >= 2) {
      const size_t a = hull[hull.size() - 2], b = hull.back();
      const double ab = (err[b] - err[a]) / static_cast<double>(t.candidates[b].bytes - t.candidates[a].bytes);
      const double ai = (err[i] - err[a]) / static_cast<double>(t.candidates[i].bytes - t.candidates[a].bytes);
      if (ai > ab) break;
      hull.pop_back();
    }
    hull.push_back(i);
  }
  return hull;
}

// With measured gains (module_gain.h) every error is scaled by its module's gain, so the sum is the
// predicted KL instead of a sum of output errors in different currencies.
double gain_of(const Sensitivity& s, const TensorSensitivity& t) { return s.has_gains && t.probe.bits ? t.probe.gain : 1.0; }

std::vector<std::vector<double>> objective_errors(const Sensitivity& s, Objective o) {
  // "both": each error relative to its sum at every tensor's cheapest candidate, so neither dominates.
  double out_scale = 0, ft_scale = 0;
  for (const auto& t : s.tensors) {
    const auto cheapest = std::min_element(t.candidates.begin(), t.candidates.end(),
                                           [](const Candidate& a, const Candidate& b) { return a.bytes < b.bytes; });
    out_scale += gain_of(s, t) * cheapest->output_error;
    ft_scale += gain_of(s, t) * cheapest->finetune_error;
  }
  std::vector<std::vector<double>> err;
  for (const auto& t : s.tensors) {
    std::vector<double> e;
    const double g = gain_of(s, t);
    for (const auto& c : t.candidates) {
      const double out = g * c.output_error, ft = g * c.finetune_error;
      if (o == Objective::kOutput) e.push_back(out);
      else if (o == Objective::kFinetune) e.push_back(ft);
      else e.push_back((out_scale > 0 ? out / out_scale : 0) + (ft_scale > 0 ? ft / ft_scale : 0));
    }
    err.push_back(std::move(e));
  }
  return err;
}

}  // namespace

Objective parse_objective(const std::string& text) {
  if (text == "finetune") return Objective::kFinetune;
  if (text == "output") return Objective::kOutput;
  if (text == "both") return Objective::kBoth;
  fail(ErrorKind::kUsage, "--objective {}: expected finetune, output or both", text);
}

std::string_view objective_name(Objective o) {
  switch (o) {
    case Objective::kFinetune: return "finetune";
    case Objective::kOutput: return "output";
    case Objective::kBoth: return "both";
  }
  return "?";
}

uint64_t total_parameters(const Sensitivity& s) {
  uint64_t n = s.fixed_parameters;
  for (const auto& t : s.tensors) n += t.parameters;
  return n;
}

uint64_t uniform_bytes(const Sensitivity& s, int bits, int group_size) {
  uint64_t bytes = s.fixed_bytes;
  for (const auto& t : s.tensors) {
    const Candidate* found = t.pinned ? &t.candidates.front() : nullptr;
    for (const auto& c : t.candidates)
      if (c.bits == bits && c.group_size == group_size) found = &c;
    if (!found)
      fail(ErrorKind::kUsage, "--smaller-than {}:{}: '{}' has no such candidate (run sensitivity with it)", bits,
           group_size, t.module);
    bytes += found->bytes;
  }
  return bytes;
}

Allocation allocate(const Sensitivity& s, uint64_t max_bytes, Objective objective,
                    const std::vector<quant::RoundingMethod>& methods) {
  if (objective != Objective::kOutput && !s.has_base)
    fail(ErrorKind::kUsage, "--objective {} needs the fine-tune's delta: run sensitivity with --base (and "
         "--adapter or the fused model), or use --objective output", objective_name(objective));
  check_methods_measured(s, methods);
  const auto err = objective_errors(s, objective);
  std::vector<std::vector<size_t>> hulls;
  std::vector<size_t> step(s.tensors.size(), 0);
  uint64_t bytes = s.fixed_bytes;
  for (size_t i = 0; i < s.tensors.size(); ++i) {
    hulls.push_back(lower_hull(s.tensors[i], err[i], allowed_candidates(s.tensors[i], methods)));
    bytes += s.tensors[i].candidates[hulls[i][0]].bytes;
  }
  if (bytes > max_bytes)
    fail(ErrorKind::kUsage, "the budget of {} bytes is below the smallest this model can be stored in with these "
         "candidates ({} bytes, every tensor at its smallest); add smaller candidates or raise the budget",
         max_bytes, bytes);
  // Max-heap of next steps by error drop per byte.
  using Step = std::pair<double, size_t>;
  std::priority_queue<Step> heap;
  const auto push_next = [&](size_t i) {
    if (step[i] + 1 >= hulls[i].size()) return;
    const auto& a = s.tensors[i].candidates[hulls[i][step[i]]];
    const auto& b = s.tensors[i].candidates[hulls[i][step[i] + 1]];
    const double gain = (err[i][hulls[i][step[i]]] - err[i][hulls[i][step[i] + 1]]) / static_cast<double>(b.bytes - a.bytes);
    heap.push({gain, i});
  };
  for (size_t i = 0; i < s.tensors.size(); ++i) push_next(i);
  while (!heap.empty()) {
    const size_t i = heap.top().second;
    heap.pop();
    const uint64_t add = s.tensors[i].candidates[hulls[i][step[i] + 1]].bytes - s.tensors[i].candidates[hulls[i][step[i]]].bytes;
    if (bytes + add > max_bytes) continue;  // does not fit: this tensor stays where it is
    bytes += add;
    ++step[i];
    push_next(i);
  }
  Allocation a;
  a.bytes = bytes;
  a.parameters = total_parameters(s);
  for (size_t i = 0; i < s.tensors.size(); ++i) {
    const size_t c = hulls[i][step[i]];
    a.choice.push_back(c);
    a.error += err[i][c];
    a.output_error += s.tensors[i].candidates[c].output_error;
    a.finetune_error += s.tensors[i].candidates[c].finetune_error;
    if (s.has_gains) a.predicted_kl += gain_of(s, s.tensors[i]) * s.tensors[i].candidates[c].output_error;
  }
  return a;
}

nlohmann::ordered_json allocation_plan_json(const Sensitivity& s, const Allocation& a, Objective objective,
                                            const std::string& budget) {
  // The global block takes the setting that covers the most parameters (mlx-lm needs one).
  std::map<std::pair<int, int>, uint64_t> coverage;
  std::map<std::string, size_t> by_method;
  nlohmann::ordered_json modules = nlohmann::ordered_json::object();
  for (size_t i = 0; i < s.tensors.size(); ++i) {
    const Candidate& c = s.tensors[i].candidates[a.choice[i]];
    coverage[{c.bits, c.group_size}] += s.tensors[i].parameters;
    modules[s.tensors[i].module] = {{"bits", c.bits}, {"group_size", c.group_size}};
    // With methods measured every module's is named, round-to-nearest too (chosen, not a default that
    // `quantize --method` could replace); without, the plan is wave 1's (quant/plan_file.h).
    if (s.second_moments) modules[s.tensors[i].module]["method"] = quant::rounding_method_name(c.method);
    ++by_method[std::string(quant::rounding_method_name(c.method))];
  }
  nlohmann::ordered_json predicted = {{"objective", objective_name(objective)}, {"budget", budget},
                                      {"error", a.error}, {"output_error", a.output_error},
                                      {"finetune_error", a.finetune_error}, {"measured_gains", s.has_gains}};
  if (s.has_gains) predicted["kl"] = a.predicted_kl;  // Σ gain · output error: the predicted KL(fused ‖ plan)
  predicted["error_metric"] = s.second_moments ? "second_moments" : "diagonal";
  if (s.held_out) predicted["held_out_errors"] = true;  // measured on other inputs than the rounding's
  if (s.second_moments) predicted["tensors_by_method"] = by_method;
  predicted["model"] = s.model_dir;
  std::pair<int, int> global{4, 64};
  uint64_t best = 0;
  for (const auto& [setting, n] : coverage)
    if (n > best) best = n, global = setting;
  return {{"format", quant::kPlanFormat},
          {"bits", global.first},
          {"group_size", global.second},
          {"tensor_bytes", a.bytes},
          {"parameters", a.parameters},
          {"bits_per_weight", a.bits_per_weight()},
          {"predicted", predicted},
          {"modules", modules}};
}

}  // namespace quantlab::analysis
