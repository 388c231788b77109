#include "bench/next_options.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <optional>
#include <utility>

#include "serve/openai_client.h"
#include "eval/report_text.h"
#include "quant/size_plan.h"

namespace quantlab::bench {

namespace {

using eval::Comparison;
using eval::ModelResult;
using eval::NextOption;
using eval::NextStep;

constexpr size_t kMaxOptions = 3;

std::string quoted(const std::string& s) {
  const bool plain = !s.empty() && s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                       "0123456789_./=:,+-") == std::string::npos;
  if (plain) return s;
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

// What one option is compared with: the baseline as the plan sees it, and the size rules to pass.
struct SizeTarget {
  uint64_t baseline_disk = 0, baseline_memory = 0;
  double disk_pct = 0, memory_pct = 0;  // thresholds of the decisive level (0: no rule)
};

struct Candidate {
  const ModelResult* model = nullptr;
  const ModelResult* baseline = nullptr;
  std::optional<quant::PlanSource> source;  // the float model the candidate's directory describes
  quant::RuntimeAssumptions runtime;
};

double pct_less(uint64_t baseline, uint64_t value) {
  return baseline ? 100.0 * (1.0 - static_cast<double>(value) / static_cast<double>(baseline)) : 0.0;
}

bool passes(const quant::SizeEstimate& e, const SizeTarget& t) {
  return pct_less(t.baseline_disk, e.disk_bytes()) + 1e-9 >= t.disk_pct &&
         pct_less(t.baseline_memory, e.memory_bytes()) + 1e-9 >= t.memory_pct;
}

std::string size_prediction(const quant::SizeEstimate& e, const SizeTarget& t) {
  std::string text = fmt::format("{:.2f} bits/weight, {} on disk ({:.1f} % smaller), {} in memory ({:.1f} % less)",
                                 e.bits_per_weight(), eval::format_bytes(e.disk_bytes()),
                                 pct_less(t.baseline_disk, e.disk_bytes()), eval::format_bytes(e.memory_bytes()),
                                 pct_less(t.baseline_memory, e.memory_bytes()));
  if (t.disk_pct <= 0 && t.memory_pct <= 0) return text;
  if (passes(e, t)) return text + ": passes the size rules";
  SizeTarget disk_only = t;
  disk_only.memory_pct = 0;
  if (t.disk_pct > 0 && passes(e, disk_only))
    return text + fmt::format(": passes the disk rule; the memory rule ({:g} % less) still fails", t.memory_pct);
  return text + ": still fails the size rules";
}

// The benched models at the widths nearest `bits` (one above, one below, or the same), with their
// accuracy and what they lost against the baseline.
std::string neighbour_evidence(const eval::BenchResults& r, int bits) {
  std::vector<std::string> seen;
  const ModelResult* below = nullptr;
  const ModelResult* above = nullptr;
  for (const ModelResult& m : r.models) {
    if (!m.ok || m.info.bits == 0) continue;
    if (m.info.bits <= bits && (!below || m.info.bits > below->info.bits)) below = &m;
    if (m.info.bits >= bits && (!above || m.info.bits < above->info.bits)) above = &m;
  }
  for (const ModelResult* m : {above, below}) {
    if (!m || (m == below && m == above && !seen.empty())) continue;
    std::string lost;
    for (const Comparison& c : r.comparisons)
      if (c.candidate == m->name) lost = fmt::format(", {} lost, {} gained", c.paired.lost, c.paired.gained);
    seen.push_back(fmt::format("{} ({}-bit g{}) {:.1f} %{}", m->name, m->info.bits, m->info.group_size,
                               m->accuracy.overall.pct(), lost));
  }
  return seen.empty() ? std::string("no quantized width measured here")
                      : fmt::format("measured here: {}", fmt::join(seen, "; "));
}

class OptionBuilder {
 public:
  OptionBuilder(const eval::BenchResults& r, const OptionContext& ctx, const Comparison& c, const Candidate& k)
      : r_(r), ctx_(ctx), c_(c), k_(k) {
    const eval::Level level =
        c.verdict == eval::Verdict::kFailure ? eval::Level::kMinimumViable : eval::Level::kOptimal;
    for (const eval::CriterionCheck& check : c.checks) {
      if (check.level != level) continue;
      if (check.rule == "disk_smaller_pct") target_.disk_pct = check.threshold;
      if (check.rule == "memory_less_pct") target_.memory_pct = check.threshold;
    }
    const ModelResult& b = *k.baseline;
    target_.baseline_disk = b.plan ? b.plan->disk_bytes() : b.info.disk_bytes;
    target_.baseline_memory = b.plan ? b.plan->memory_bytes() : b.memory.model_bytes();
  }

  void for_problem(eval::Problem p, std::vector<NextOption>& out) {
    switch (p) {
      case eval::Problem::kSize:
        size_options(out);
        break;
      case eval::Problem::kAccuracy:
        accuracy_options(out);
        break;
      case eval::Problem::kSpeed:
        speed_option(out);
        break;
      default:
        break;
    }
  }

 private:
  std::string quantize_command(int bits, int group, std::string_view name_suffix = "",
                               std::string_view extra_flags = "") const {
    return fmt::format("quantlab quantize {} {} --bits {} --group-size {}{}", quoted(source_dir()),
                       quoted(fmt::format("q{}-g{}{}", bits, group, name_suffix)), bits, group, extra_flags);
  }
  std::string source_dir() const {
    if (!ctx_.source_dir.empty()) return ctx_.source_dir;
    for (const ModelResult& m : r_.models)
      if (m.ok && !m.info.quantized && !serve::is_remote_spec(m.dir)) return m.dir;  // a server is no source
    return "FLOAT_MODEL";
  }
  std::string calibration_flags() const {
    return fmt::format(" --calibration {}{}", quoted(ctx_.suite),
                       ctx_.tools.empty() ? std::string() : " --tools " + quoted(ctx_.tools));
  }
  bool has(NextStep s) const { return std::find(c_.next_steps.begin(), c_.next_steps.end(), s) != c_.next_steps.end(); }

  // The uniform settings the plan predicts pass the size rules, most bits per weight first: the
  // smallest step away from a candidate that kept the fine-tune. When the memory rule needs far fewer
  // bits than the disk rule (a small model whose KV cache dominates its memory), the setting that
  // passes the disk rule alone is shown too, with what still fails.
  void size_options(std::vector<NextOption>& out) {
    if (!k_.source || !has(NextStep::kTryLargerGroupOrFewerBits)) return mixed_option(out, true);
    std::optional<quant::SizeEstimate> best_all, next_all, best_disk;
    const int bits = k_.model->info.bits;
    SizeTarget disk_only = target_;
    disk_only.memory_pct = 0;
    const auto better = [](const std::optional<quant::SizeEstimate>& have, const quant::SizeEstimate& e) {
      return !have || e.bits_per_weight() > have->bits_per_weight();
    };
    std::vector<quant::SizeEstimate> smaller;  // every setting below the candidate's, estimated once
    for (int b = bits; b >= 2; --b)
      for (int g : {128, 64, 32})
        if (b < bits || g > k_.model->info.group_size) smaller.push_back(quant::estimate_size(*k_.source, b, g, k_.runtime));
    for (const quant::SizeEstimate& e : smaller) {
      if (passes(e, target_) && better(best_all, e)) best_all = e;
      if (passes(e, disk_only) && better(best_disk, e)) best_disk = e;
    }
    // The next passing width below the best one: the second option when the disk rule offers nothing closer.
    if (best_all)
      for (const quant::SizeEstimate& e : smaller)
        if (e.bits < best_all->bits && passes(e, target_) && (!next_all || e.bits > next_all->bits ||
                                                              (e.bits == next_all->bits && better(next_all, e))))
          next_all = e;
    const bool disk_closer = best_disk && (!best_all || best_disk->bits_per_weight() > best_all->bits_per_weight());
    for (const auto& e : {best_all, disk_closer ? best_disk : next_all})
      if (e)
        out.push_back({NextStep::kTryLargerGroupOrFewerBits, quantize_command(e->bits, e->group_size),
                       size_prediction(*e, target_), neighbour_evidence(r_, e->bits)});
    mixed_option(out, true);
  }

  // A per-module plan: within the size rule (size problem) or at the candidate's own size (accuracy).
  void mixed_option(std::vector<NextOption>& out, bool to_pass_size) {
    if (!has(NextStep::kTryMixedPlan) || ctx_.suite.empty()) return;
    const ModelResult& b = *k_.baseline;
    std::string budget, prediction;
    if (to_pass_size && b.info.bits > 0 && b.info.group_size > 0 && target_.disk_pct > 0) {
      budget = fmt::format("--smaller-than {}:{} --by {:g}", b.info.bits, b.info.group_size, target_.disk_pct);
      prediction = fmt::format("tensor bytes {:g} % under {}-bit g{}, widths chosen per module", target_.disk_pct,
                               b.info.bits, b.info.group_size);
    } else if (k_.model->plan) {
      const uint64_t bytes = k_.model->plan->tensor_bytes;
      budget = fmt::format("--max-bytes {}", bytes);
      prediction = fmt::format("the size of {} ({}), widths moved to the modules the suite's outputs depend on most",
                               k_.model->name, eval::format_bytes(bytes));
    } else {
      return;
    }
    out.push_back({NextStep::kTryMixedPlan,
                   fmt::format("quantlab quantize {} mixed {}{}", quoted(source_dir()), budget, calibration_flags()),
                   prediction, "allocation measured on the bundled model: docs/mixed-precision.md"});
  }

  void accuracy_options(std::vector<NextOption>& out) {
    mixed_option(out, false);
    const int bits = k_.model->info.bits, group = k_.model->info.group_size;
    if (bits == 0 || group == 0 || !k_.source) return;
    if (has(NextStep::kPinRouters)) {
      out.push_back({NextStep::kPinRouters, quantize_command(bits, group, "-routers8", " --override 'mlp\\.gate$=8'"),
                     "the routers at 8 bits, so rounding does not move the experts chosen",
                     "routers are a fraction of a percent of the weights"});
    }
    if (has(NextStep::kTryMoreBits) && bits < 8) {
      const quant::SizeEstimate e = quant::estimate_size(*k_.source, bits + 1, group, k_.runtime);
      out.push_back({NextStep::kTryMoreBits, quantize_command(bits + 1, group), size_prediction(e, target_),
                     neighbour_evidence(r_, bits + 1)});
    }
  }

  void speed_option(std::vector<NextOption>& out) {
    if (!std::count(c_.next_steps.begin(), c_.next_steps.end(), NextStep::kRepeatSpeedRuns)) return;
    std::string cmd = "quantlab bench";
    for (const ModelResult& m : r_.models) cmd += " --model " + quoted(m.name + "=" + m.dir);
    cmd += fmt::format(" --baseline {} --suite {}", quoted(r_.settings.baseline), quoted(ctx_.suite));
    if (!ctx_.tools.empty()) cmd += " --tools " + quoted(ctx_.tools);
    cmd += fmt::format(" --runs {}", std::max<size_t>(5, 2 * r_.settings.runs));
    out.push_back({NextStep::kRepeatSpeedRuns, cmd, "a median over more runs and its spread",
                   fmt::format("measured in {} run(s)", r_.settings.runs)});
  }

  const eval::BenchResults& r_;
  const OptionContext& ctx_;
  const Comparison& c_;
  const Candidate& k_;
  SizeTarget target_;
};

Candidate candidate_of(const eval::BenchResults& r, const Comparison& c) {
  Candidate k;
  k.model = r.find(c.candidate);
  k.baseline = r.find(c.baseline);
  if (!k.model || !k.baseline) return k;
  if (const auto& p = k.model->plan) {
    k.runtime.context = static_cast<int64_t>(p->context);
    k.runtime.prefill_chunk = static_cast<int64_t>(p->prefill_batch);
    k.runtime.threads = std::max<size_t>(1, p->threads);
  }
  try {
    k.source = quant::load_plan_source(k.model->dir);
  } catch (const std::exception&) {
    // No plan-based options for a directory the plan cannot read; bench already warned.
  }
  return k;
}

}  // namespace

void add_next_options(eval::BenchResults& results, const OptionContext& context) {
  for (Comparison& c : results.comparisons) {
    const Candidate k = candidate_of(results, c);
    if (!k.model || !k.baseline) continue;
    std::vector<NextOption> options;
    for (const NextOption& o : c.options)
      if (o.step == NextStep::kGrowSuite) options.push_back(o);  // the verdict's own, first
    OptionBuilder builder(results, context, c, k);
    for (eval::Problem p : c.problems) builder.for_problem(p, options);
    // A mixed plan answers both a size and an accuracy problem: offered once, where it ranks first.
    bool mixed_seen = false;
    std::erase_if(options, [&mixed_seen](const NextOption& o) {
      if (o.step != NextStep::kTryMixedPlan) return false;
      return std::exchange(mixed_seen, true);
    });
    if (options.size() > kMaxOptions) options.resize(kMaxOptions);
    c.options = std::move(options);
  }
}

}  // namespace quantlab::bench
