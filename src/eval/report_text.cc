#include "eval/report_text.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

namespace quantlab::eval {

namespace {

std::string bits_label(const ModelResult& m) {
  if (m.info.disk_bytes == 0 && m.info.architecture.starts_with("remote")) return "server";  // no @DIR: unknown
  if (!m.info.quantized) return "float";
  return m.info.bits ? fmt::format("{}-bit g{}", m.info.bits, m.info.group_size) : "mixed";
}

std::string spread(const Summary& s, int precision) {
  if (s.n < 2) return fmt::format("{:.{}f}", s.median, precision);
  return fmt::format("{:.{}f} ± {:.{}f}", s.median, precision, s.stddev, precision);
}

// "23.4 % smaller" / "87.7 % larger": a negative saving reads better as its opposite.
std::string relative(double pct_less, const char* less, const char* more) {
  return fmt::format("{:.1f} % {}", std::abs(pct_less), pct_less >= 0 ? less : more);
}

// The same for a comparison's disk or memory rule, which a server without @DIR leaves unmeasured.
std::string relative(const Comparison& c, std::string_view rule, double pct_less, const char* less, const char* more) {
  for (const CriterionCheck& k : c.checks)
    if (k.rule == rule && !k.measured) return "not measured";
  return relative(pct_less, less, more);
}

std::string cold_label(const LoadResult& l) {
  if (l.cold.seconds) return fmt::format("{:.3f} s", *l.cold.seconds);
  return l.cold.attempted ? "n/a (not cold)" : "n/a";
}

std::string accuracy_label(const Tally& t) {
  return fmt::format("{}/{} = {:.1f} % [{:.1f}, {:.1f}]", t.correct, t.total, t.pct(), 100 * t.wilson95.low,
                     100 * t.wilson95.high);
}

std::string settings_line(const BenchResults& r) {
  const BenchSettings& s = r.settings;
  return fmt::format("suite {} ({} queries), tools {}, greedy, max {} tokens, thinking {}, {} run{}, {} threads",
                     std::filesystem::path(s.suite).filename().string(), s.suite_queries,
                     std::filesystem::path(s.tools).filename().string(), s.max_tokens, s.thinking ? "on" : "off",
                     s.runs, s.runs == 1 ? "" : "s", r.machine.threads);
}

// --- Markdown -------------------------------------------------------------------------------------

void md_models(std::string& out, const BenchResults& r) {
  out +=
      "## Models\n\n| model | storage | bits/weight | disk | model memory | peak RSS | load warm | load cold | "
      "prefill tok/s | decode tok/s | s/query mean | s/query median | accuracy [95 % CI] |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const ModelResult& m : r.models) {
    if (!m.ok) continue;
    out += fmt::format("| {} | {} | {:.2f} | {} | {} | {} | {:.3f} s ({}) | {} | {} | {} | {} | {} | {} |\n", m.name,
                       bits_label(m), m.info.bits_per_weight, format_bytes(m.info.disk_bytes),
                       format_bytes(m.memory.model_bytes()), format_bytes(m.memory.peak_rss), m.load.seconds,
                       m.load.cache_state, cold_label(m.load), spread(m.speed.prefill_tps(), 1),
                       spread(m.speed.decode_tps(), 1), spread(m.speed.mean_query_seconds(), 4),
                       spread(m.speed.median_query_seconds(), 4), accuracy_label(m.accuracy.overall));
  }
  for (const ModelResult& m : r.models)
    if (!m.ok) out += fmt::format("\n**{} failed**: {}\n", m.name, m.error);
  out +=
      "\nSpeeds are the median over runs ± the standard deviation between runs. Model memory = mapped weights + "
      "copied weights + KV cache + scratch; the memory rules compare it.\n\n";
}

// --- plan vs measured -------------------------------------------------------------------------------

std::string plan_setting(const PlanPrediction& p) {
  return p.bits ? fmt::format("{}-bit g{}", p.bits, p.group_size) : "float as stored";
}

std::string no_plan_reason(const ModelResult& m) {
  return m.plan_warning.empty() ? "not recorded with this result" : m.plan_warning;
}

std::string bound_label(const PlanPrediction& p) {
  return p.decode_tps_bound() > 0 ? fmt::format("{:.1f}", p.decode_tps_bound()) : "n/a";
}

std::string fraction_label(double f) { return f > 0 ? fmt::format("{:.0f} %", 100 * f) : "n/a"; }

std::string bandwidth_line(const MachineInfo& m) {
  if (m.bandwidth_gb_per_s <= 0) return "no memory bandwidth was measured, so there is no decode bound";
  return fmt::format("decode bound = {:.1f} GB/s ({}) / weight bytes read per token", m.bandwidth_gb_per_s,
                     m.bandwidth_source);
}

void md_plan(std::string& out, const BenchResults& r) {
  out += fmt::format(
      "## Plan vs measured\n\n`quantlab plan`'s prediction for each directory as stored, at the bench session's "
      "context and prefill batch; {}.\n\n"
      "| model | predicted as | disk plan | disk measured | measured/plan | memory plan | memory measured | "
      "measured/plan | read/token | decode bound tok/s | decode measured tok/s | % of plan bound |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|\n",
      bandwidth_line(r.machine));
  std::string notes;
  for (const ModelResult& m : r.models) {
    if (!m.ok) continue;
    if (!m.plan) {
      notes += fmt::format("\n> No plan for {}: {}.\n", m.name, no_plan_reason(m));
      continue;
    }
    const PlanPrediction& p = *m.plan;
    const PlanVsMeasured v = plan_vs_measured(m);
    out += fmt::format("| {} | {} | {} | {} | {:.3f} | {} | {} | {:.3f} | {} | {} | {:.1f} | {} |\n", m.name,
                       plan_setting(p), format_bytes(p.disk_bytes()), format_bytes(m.info.disk_bytes), v.disk_ratio,
                       format_bytes(p.memory_bytes()), format_bytes(m.memory.model_bytes()), v.memory_ratio,
                       format_bytes(p.bytes_per_token), bound_label(p), figures_of(m).decode_tps,
                       fraction_label(v.decode_fraction_of_bound));
  }
  out += notes;
  out +=
      "\nMemory plan = weights + f32 KV cache at the session's context + scratch; measured = model memory above "
      "(it also counts the f32 copies of the norms). Decode measured is the median over runs.\n\n";
}

void md_accuracy_breakdown(std::string& out, const BenchResults& r) {
  out +=
      "### Accuracy by part\n\n| model | decision | tool queries | direct queries | tool name | arguments |\n"
      "|---|---|---|---|---|---|\n";
  for (const ModelResult& m : r.models) {
    if (!m.ok) continue;
    const AccuracySummary& a = m.accuracy;
    out += fmt::format("| {} | {} | {} | {} | {} | {} |\n", m.name, accuracy_label(a.decision),
                       accuracy_label(a.tool_queries), accuracy_label(a.direct_queries), accuracy_label(a.tool_name),
                       a.arguments.total ? accuracy_label(a.arguments) : "(none expected)");
  }
  out += "\n";
}

// Groups by digest: "A", "B", ... in order of appearance; "none" without the file.
std::vector<std::string> group_labels(const std::vector<std::string>& digests) {
  std::vector<std::string> seen, labels;
  for (const std::string& d : digests) {
    if (d.empty()) {
      labels.push_back("none");
      continue;
    }
    auto it = std::find(seen.begin(), seen.end(), d);
    if (it == seen.end()) it = seen.insert(seen.end(), d);
    labels.push_back(std::string(1, static_cast<char>('A' + (it - seen.begin()) % 26)));
  }
  return labels;
}

// Whether the models tokenize and render a suite alike: a bench across families (a smaller base) is
// read by accuracy; its token counts and speeds per token do not compare one to one.
std::string text_sharing(const BenchResults& r, bool markdown) {
  std::vector<const ModelResult*> ok;
  std::vector<std::string> tok, tmpl;
  for (const ModelResult& m : r.models)
    if (m.ok) ok.push_back(&m), tok.push_back(m.info.tokenizer_digest), tmpl.push_back(m.info.chat_template_digest);
  if (ok.size() < 2) return "";
  const auto same = [](const std::vector<std::string>& v) { return std::all_of(v.begin(), v.end(), [&](const auto& x) { return x == v.front(); }); };
  if (same(tok) && same(tmpl)) return markdown ? "All models share one tokenizer and chat template.\n\n" : "";
  const auto tl = group_labels(tok), pl = group_labels(tmpl);
  std::string out = markdown ? "### Tokenizers and chat templates\n\nThe models do not all share a tokenizer and "
                               "chat template: the suite's prompts tokenize and render differently, so compare "
                               "accuracies, not token counts or logits. Same letter, same file.\n\n| model | "
                               "architecture | tokenizer | chat template |\n|---|---|---|---|\n"
                             : "\ntokenizers and chat templates differ (same letter, same file):";
  for (size_t i = 0; i < ok.size(); ++i)
    out += markdown ? fmt::format("| {} | {} | {} | {} |\n", ok[i]->name, ok[i]->info.architecture, tl[i], pl[i])
                    : fmt::format(" {} tokenizer {} template {};", ok[i]->name, tl[i], pl[i]);
  return out + (markdown ? "\n" : "\n");
}

void md_comparison(std::string& out, const Comparison& c) {
  out += fmt::format("### {} vs {}: **{}**\n\n", c.candidate, c.baseline, verdict_name(c.verdict));
  out += fmt::format(
      "Disk {}, memory {}, decode speed {:.3f}×. Accuracy {:+.1f} points "
      "({} lost, {} gained, {} both right, {} both wrong; exact McNemar p = {:.3g}).\n\n",
      relative(c, "disk_smaller_pct", c.disk_smaller_pct, "smaller", "larger"),
      relative(c, "memory_less_pct", c.memory_less_pct, "less", "more"), c.speed_ratio,
      c.paired.difference_pct, c.paired.lost, c.paired.gained, c.paired.both_right, c.paired.both_wrong,
      c.paired.mcnemar_p);
  out += "| level | rule | value | threshold | result |\n|---|---|---|---|---|\n";
  for (const CriterionCheck& k : c.checks)
    out += fmt::format("| {} | {} | {:.3f} | {:g} | {} |\n", level_name(k.level), k.rule, k.value, k.threshold,
                       k.passed ? "pass" : "**fail**");
  if (!c.failing.empty()) out += fmt::format("\nDecided by: {}.\n", fmt::join(c.failing, "; "));
  out += fmt::format("\n**Next step**: {}.\n", c.advice);
  for (const NextOption& o : c.options) out += fmt::format("\n- `{}`: {}; {}.", o.command, o.prediction, o.evidence);
  if (!c.options.empty()) out += "\n";
  for (const std::string& w : c.warnings) out += fmt::format("\n> Warning: {}.\n", w);
  out += "\n";
}

std::string query_cell(const QueryResult& q) {
  std::string cell = fmt::format("{} {}", q.score.correct ? "✓" : "✗", q.score.decided_tool ? "tool" : "direct");
  if (q.score.called_tool) cell += " " + *q.score.called_tool;
  if (q.first_token_margin) cell += fmt::format(" ({:+.2f})", *q.first_token_margin);
  return cell;
}

void md_queries(std::string& out, const BenchResults& r) {
  std::vector<const ModelResult*> ok;
  for (const ModelResult& m : r.models)
    if (m.ok) ok.push_back(&m);
  if (ok.empty()) return;
  out +=
      "## Per query\n\nEach cell: right or wrong, the decision, the tool called, and (in brackets) the first-token "
      "margin of `<tool_call>` over the best other token.\n\n| query | expected |";
  for (const ModelResult* m : ok) out += fmt::format(" {} |", m->name);
  out += "\n|---|---|";
  for (size_t i = 0; i < ok.size(); ++i) out += "---|";
  out += "\n";
  for (size_t qi = 0; qi < ok.front()->queries.size(); ++qi) {
    const QueryResult& q0 = ok.front()->queries[qi];
    out += fmt::format("| {} | {} |", q0.id, q0.expect_tool ? "tool " + q0.expected_tool.value_or("") : "direct");
    for (const ModelResult* m : ok) out += " " + (qi < m->queries.size() ? query_cell(m->queries[qi]) : "") + " |";
    out += "\n";
  }
  out += "\n";
}

void md_replies(std::string& out, const BenchResults& r) {
  for (const ModelResult& m : r.models) {
    if (!m.ok) continue;
    out += fmt::format("<details><summary>Raw replies of {}</summary>\n\n", m.name);
    for (const QueryResult& q : m.queries) {
      std::string reply = q.reply;
      for (size_t p = 0; (p = reply.find("```", p)) != std::string::npos; p += 4) reply.insert(p, "\u200b");
      out += fmt::format("**{}** ({} tokens, {}):\n```\n{}\n```\n", q.id, q.generated_tokens, q.stop_reason, reply);
    }
    out += "</details>\n\n";
  }
}

void md_overhead(std::string& out, const BenchResults& r) {
  out +=
      "## Harness overhead\n\n| model | suite wall s | in the model s | harness s | overhead "
      "|\n|---|---|---|---|---|\n";
  for (const ModelResult& m : r.models)
    if (m.ok)
      out += fmt::format("| {} | {:.3f} | {:.3f} | {:.4f} | {:.2f} % |\n", m.name, m.harness.suite_seconds,
                         m.harness.model_seconds, m.harness.harness_seconds, m.harness.overhead_pct());
  out += fmt::format("\nWhole command: {:.2f} s, of which {:.2f} s inside the worker processes.\n", r.total_seconds,
                     r.workers_seconds);
}

void table_plan(std::string& out, const BenchResults& r) {
  out += fmt::format("\nplan vs measured ({})\n", bandwidth_line(r.machine));
  out += fmt::format("{:<14} {:>15} {:>10} {:>10} {:>7} {:>10} {:>10} {:>7} {:>10} {:>10} {:>8}\n", "model",
                     "predicted as", "disk plan", "measured", "ratio", "mem plan", "measured", "ratio", "bound t/s",
                     "decode t/s", "of bound");
  for (const ModelResult& m : r.models) {
    if (!m.ok) continue;
    if (!m.plan) {
      out += fmt::format("{:<14} no plan: {}\n", m.name, no_plan_reason(m));
      continue;
    }
    const PlanPrediction& p = *m.plan;
    const PlanVsMeasured v = plan_vs_measured(m);
    out += fmt::format("{:<14} {:>15} {:>10} {:>10} {:>7.3f} {:>10} {:>10} {:>7.3f} {:>10} {:>10.1f} {:>8}\n", m.name,
                       plan_setting(p), format_bytes(p.disk_bytes()), format_bytes(m.info.disk_bytes), v.disk_ratio,
                       format_bytes(p.memory_bytes()), format_bytes(m.memory.model_bytes()), v.memory_ratio,
                       bound_label(p), figures_of(m).decode_tps, fraction_label(v.decode_fraction_of_bound));
  }
}

}  // namespace

std::string format_bytes(uint64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  size_t u = 0;
  while (v >= 1000 && u + 1 < std::size(units)) v /= 1000, ++u;
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.{}f} {}", v, v < 10 ? 2 : 1, units[u]);
}

std::string render_markdown(const BenchResults& r) {
  std::string out = "# quantlab bench\n\n";
  out += fmt::format("{}; criteria: {}; baseline: {}. Machine: {} ({}).\n\n", settings_line(r),
                     r.settings.criteria.source, r.settings.baseline, r.machine.cpu, r.machine.simd_target);
  md_decision_record(out, r);
  md_models(out, r);
  out += text_sharing(r, true);
  md_accuracy_breakdown(out, r);
  md_plan(out, r);
  if (!r.comparisons.empty()) out += "## Verdicts\n\n";
  for (const Comparison& c : r.comparisons) md_comparison(out, c);
  md_queries(out, r);
  md_overhead(out, r);
  out += "\n";
  md_replies(out, r);
  return out;
}

std::string render_table(const BenchResults& r) {
  std::string out = settings_line(r) + "\n\n";
  out += fmt::format("{:<14} {:>12} {:>10} {:>10} {:>10} {:>9} {:>11} {:>11} {:>9}  {}\n", "model", "storage", "disk",
                     "memory", "peak RSS", "load s", "prefill t/s", "decode t/s", "s/query", "accuracy [95 % CI]");
  for (const ModelResult& m : r.models) {
    if (!m.ok) {
      out += fmt::format("{:<14} FAILED: {}\n", m.name, m.error);
      continue;
    }
    out += fmt::format("{:<14} {:>12} {:>10} {:>10} {:>10} {:>9.3f} {:>11.1f} {:>11.1f} {:>9.4f}  {}\n", m.name,
                       bits_label(m), format_bytes(m.info.disk_bytes), format_bytes(m.memory.model_bytes()),
                       format_bytes(m.memory.peak_rss), m.load.seconds, m.speed.prefill_tps().median,
                       m.speed.decode_tps().median, m.speed.mean_query_seconds().median,
                       accuracy_label(m.accuracy.overall));
  }
  table_plan(out, r);
  out += text_sharing(r, false);
  for (const Comparison& c : r.comparisons) {
    out += fmt::format(
        "\n{} vs {}: {}  (disk {}, memory {}, speed {:.2f}x, accuracy {:+.1f} points, McNemar p = {:.3g})\n",
        c.candidate, c.baseline, verdict_name(c.verdict), relative(c, "disk_smaller_pct", c.disk_smaller_pct, "smaller", "larger"),
        relative(c, "memory_less_pct", c.memory_less_pct, "less", "more"), c.speed_ratio, c.paired.difference_pct, c.paired.mcnemar_p);
    for (const std::string& f : c.failing) out += fmt::format("  - {}\n", f);
    out += fmt::format("  next step: {}\n", c.advice);
    for (const NextOption& o : c.options) out += fmt::format("  try: {}\n       ({})\n", o.command, o.prediction);
    for (const std::string& w : c.warnings) out += fmt::format("  warning: {}\n", w);
  }
  return out;
}

}  // namespace quantlab::eval
