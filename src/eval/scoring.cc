#include "eval/scoring.h"

#include <fmt/format.h>

#include "core/error.h"
#include "text/tool_calls.h"

namespace quantlab::eval {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view skip_space(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  return s;
}

// Reads a JSON string literal at the start of s (after the opening quote), undoing simple escapes.
std::string read_json_string(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '"') return out;
    if (s[i] == '\\' && i + 1 < s.size()) ++i;
    out += s[i];
  }
  return "";  // unterminated: no name
}

// JSON equality that ignores key order: ordered_json compares objects in insertion order, so both
// sides are compared as (sorted) nlohmann::json. A cut-off call (null arguments) is never equal.
bool json_equal(const nlohmann::ordered_json& a, const nlohmann::ordered_json& b) {
  return nlohmann::json::parse(a.dump()) == nlohmann::json::parse(b.dump());
}

void check_tool_call(const Query& query, const text::ParsedReply& parsed, const ToolSet* tools, QueryScore& s) {
  if (parsed.tool_calls.empty()) return;
  const text::ToolCall& call = parsed.tool_calls.front();
  std::string name = call.name.empty() ? lenient_tool_name(call.raw) : call.name;
  if (!call.ok()) s.note = call.error;
  if (!name.empty()) s.called_tool = name;
  if (!name.empty() && tools && !tools->contains(name))
    s.note += fmt::format("{}unknown tool '{}'", s.note.empty() ? "" : "; ", name);
  if (!query.expect_tool || !s.decided_tool) return;
  s.tool_correct = query.tool && s.called_tool == query.tool;
  if (query.arguments) s.arguments_correct = !call.arguments.is_null() && json_equal(call.arguments, *query.arguments);
}

}  // namespace

std::string lenient_tool_name(std::string_view call_text) {
  const size_t key = call_text.find("\"name\"");
  if (key == std::string_view::npos) return "";
  std::string_view rest = skip_space(call_text.substr(key + 6));
  if (rest.empty() || rest.front() != ':') return "";
  rest = skip_space(rest.substr(1));
  if (rest.empty() || rest.front() != '"') return "";
  return read_json_string(rest.substr(1));
}

QueryScore score_reply(const Query& query, std::string_view reply, const ToolSet* tools, bool skip_reasoning) {
  QueryScore s;
  const text::ParsedReply parsed = text::parse_reply(reply);
  s.decided_tool = text::starts_with_tool_call(reply, skip_reasoning);
  s.decision_correct = s.decided_tool == query.expect_tool;
  check_tool_call(query, parsed, tools, s);
  // A tool query answered with a call must also name the right tool (and arguments); a wrong decision
  // is wrong whatever else the reply holds.
  s.correct = s.decision_correct && s.tool_correct.value_or(true) && s.arguments_correct.value_or(true);
  return s;
}

Tally make_tally(size_t correct, size_t total) {
  QL_CHECK(correct <= total, "{} correct of {}", correct, total);
  return {correct, total, wilson_interval(correct, total)};
}

AccuracySummary summarize_scores(std::span<const Query> queries, std::span<const QueryScore> scores) {
  QL_CHECK(queries.size() == scores.size(), "{} queries, {} scores", queries.size(), scores.size());
  size_t overall = 0, decision = 0, tool_ok = 0, tool_n = 0, direct_ok = 0, direct_n = 0;
  size_t name_ok = 0, name_n = 0, args_ok = 0, args_n = 0;
  for (size_t i = 0; i < queries.size(); ++i) {
    const QueryScore& s = scores[i];
    overall += s.correct;
    decision += s.decision_correct;
    (queries[i].expect_tool ? tool_n : direct_n) += 1;
    (queries[i].expect_tool ? tool_ok : direct_ok) += s.correct;
    if (s.tool_correct) name_n += 1, name_ok += *s.tool_correct;
    if (s.arguments_correct) args_n += 1, args_ok += *s.arguments_correct;
  }
  AccuracySummary a;
  a.overall = make_tally(overall, queries.size());
  a.decision = make_tally(decision, queries.size());
  a.tool_queries = make_tally(tool_ok, tool_n);
  a.direct_queries = make_tally(direct_ok, direct_n);
  a.tool_name = make_tally(name_ok, name_n);
  a.arguments = make_tally(args_ok, args_n);
  return a;
}

FirstTokenMargin tool_call_margin(std::span<const float> logits, int32_t tool_call_id) {
  QL_CHECK(tool_call_id >= 0 && static_cast<size_t>(tool_call_id) < logits.size(), "token id {} of {} logits",
           tool_call_id, logits.size());
  FirstTokenMargin m;
  float best = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (static_cast<int32_t>(i) == tool_call_id) continue;
    if (m.best_other_id < 0 || logits[i] > best) best = logits[i], m.best_other_id = static_cast<int32_t>(i);
  }
  m.margin = m.best_other_id < 0 ? 0.0 : static_cast<double>(logits[tool_call_id]) - best;
  return m;
}

}  // namespace quantlab::eval
