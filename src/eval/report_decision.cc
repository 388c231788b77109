// The decision record of REPORT.md (issue 22): shaped like a lab notebook entry, pasted as it is.
// Outcome, the evidence per rule with its cause, what to do now with which directories, what to try next.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "eval/report_text.h"

namespace quantlab::eval {

namespace {

int verdict_rank(Verdict v) { return v == Verdict::kOptimal ? 2 : v == Verdict::kMinimumViable ? 1 : 0; }

// The comparison the record is about: the best verdict, the smallest model among equals.
const Comparison* decisive(const BenchResults& r) {
  const Comparison* best = nullptr;
  for (const Comparison& c : r.comparisons) {
    const ModelResult* m = r.find(c.candidate);
    const ModelResult* b = best ? r.find(best->candidate) : nullptr;
    if (!best || verdict_rank(c.verdict) > verdict_rank(best->verdict) ||
        (verdict_rank(c.verdict) == verdict_rank(best->verdict) && m && b && m->info.disk_bytes < b->info.disk_bytes))
      best = &c;
  }
  return best;
}

std::string dir_of(const BenchResults& r, const std::string& name) {
  const ModelResult* m = r.find(name);
  return m ? fmt::format("{} (`{}`)", name, m->dir) : name;
}

void evidence_table(std::string& out, const BenchResults& r) {
  out += "| candidate | level | rule | value | threshold | result | cause |\n|---|---|---|---|---|---|---|\n";
  for (const Comparison& c : r.comparisons)
    for (const CriterionCheck& k : c.checks)
      out += fmt::format("| {} | {} | {} | {:.3f} | {:g} | {} | {} |\n", c.candidate, level_name(k.level), k.rule,
                         k.value, k.threshold, k.passed ? "pass" : "**fail**", k.passed ? "" : k.cause);
  out += "\n";
}

void now_section(std::string& out, const BenchResults& r, const Comparison& best) {
  std::vector<std::string> archive;
  if (best.verdict == Verdict::kFailure) {
    out += fmt::format("**Now**: keep {} as the standard.", dir_of(r, best.baseline));
    for (const Comparison& c : r.comparisons) archive.push_back(dir_of(r, c.candidate));
  } else {
    out += fmt::format("**Now**: switch to {} ({}).", dir_of(r, best.candidate), verdict_name(best.verdict));
    archive.push_back(dir_of(r, best.baseline) + " once the switch is deployed");
    for (const Comparison& c : r.comparisons)
      if (&c != &best) archive.push_back(dir_of(r, c.candidate));
  }
  if (!archive.empty()) out += fmt::format(" Archive: {}.", fmt::join(archive, "; "));
  out += "\n\n";
}

void next_section(std::string& out, const Comparison& best) {
  if (best.options.empty()) {
    out += best.verdict == Verdict::kOptimal ? "**Next**: nothing; the candidate meets every optimal rule.\n\n"
                                             : "**Next**: no option quantlab can run is predicted to help.\n\n";
    return;
  }
  out += "**Next**, ranked:\n\n";
  for (size_t i = 0; i < best.options.size(); ++i) {
    const NextOption& o = best.options[i];
    out += fmt::format("{}. `{}`  \n   {}; {}.\n", i + 1, o.command, o.prediction, o.evidence);
  }
  if (best.options.front().command.find("FLOAT_MODEL") != std::string::npos ||
      (best.options.size() > 1 && best.options[1].command.find("FLOAT_MODEL") != std::string::npos))
    out += "\n   FLOAT_MODEL: the float model the candidates were quantized from (`bench --source` fills it in).\n";
  out += "\n";
}

}  // namespace

void md_decision_record(std::string& out, const BenchResults& r) {
  const Comparison* best = decisive(r);
  if (!best) return;
  out += "## Decision record\n\n";
  out += fmt::format("**Outcome: {}** ({} vs {}). {}.\n\n", verdict_name(best->verdict), best->candidate,
                     best->baseline, best->advice);
  if (!best->problems.empty()) {
    std::vector<std::string_view> names;
    for (Problem p : best->problems) names.push_back(problem_name(p));
    out += fmt::format("Problem: {}.\n\n", fmt::join(names, ", then "));
  }
  evidence_table(out, r);
  now_section(out, r, *best);
  next_section(out, *best);
  if (best->suite_need.queries)
    out += fmt::format("Suite: {} queries; resolving a {:g}-point drop at the baseline's {:.1f} % needs {} "
                       "(`quantlab suite-size`).\n\n",
                       best->paired.n, best->suite_need.drop_pct, best->suite_need.baseline_accuracy_pct,
                       best->suite_need.queries);
}

}  // namespace quantlab::eval
