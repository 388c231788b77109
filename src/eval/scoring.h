// Scoring one model reply against one suite query, and the suite totals with their 95 % intervals.
//
// Decision rule (tests/data/README.md): the model chose "tool" when its reply, after whitespace and an
// optional empty think block, starts with `<tool_call>`. A query is correct when the decision matches
// and, for tool queries, the first call names the expected tool and (when the query gives arguments)
// its arguments are JSON-equal to the expected ones.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "eval/stats.h"
#include "eval/suite.h"

namespace quantlab::eval {

struct QueryScore {
  bool decided_tool = false;               // the reply starts with <tool_call>
  bool decision_correct = false;           // decided_tool == query.expect_tool
  std::optional<std::string> called_tool;  // name in the first tool call, when one could be read
  std::optional<bool> tool_correct;        // tool queries only: called_tool == query.tool
  std::optional<bool> arguments_correct;   // queries with expected arguments only
  bool correct = false;                    // every check above that applies
  std::string note;                        // why a call could not be read, or "unknown tool 'x'"
};

// `tools` (optional) lets the score note calls to tools the suite does not define. With
// skip_reasoning (thinking turned on), a leading non-empty think block is skipped before the decision.
QueryScore score_reply(const Query& query, std::string_view reply, const ToolSet* tools = nullptr,
                       bool skip_reasoning = false);

// The name of a tool call even when its JSON is cut off (a reply that hit --max-tokens): the first
// `"name": "..."` string after the opening of the block. Empty when there is none.
std::string lenient_tool_name(std::string_view call_text);

// successes out of n with the 95 % Wilson interval.
struct Tally {
  size_t correct = 0;
  size_t total = 0;
  Interval wilson95;

  double pct() const { return total ? 100.0 * static_cast<double>(correct) / static_cast<double>(total) : 0.0; }
};
Tally make_tally(size_t correct, size_t total);

struct AccuracySummary {
  Tally overall;         // every check that applies
  Tally decision;        // tool vs direct, all queries
  Tally tool_queries;    // overall, over the queries expecting a tool
  Tally direct_queries;  // overall, over the queries expecting a direct answer
  Tally tool_name;       // over tool queries the model answered with a call
  Tally arguments;       // over queries with expected arguments the model answered with a call
};
AccuracySummary summarize_scores(std::span<const Query> queries, std::span<const QueryScore> scores);

// How strongly the first reply token leans towards `<tool_call>`: its logit minus the best logit of
// any other token (positive: the greedy reply starts with a tool call). `logits` are those after
// prefill of the prompt.
struct FirstTokenMargin {
  double margin = 0;
  int32_t best_other_id = -1;
};
FirstTokenMargin tool_call_margin(std::span<const float> logits, int32_t tool_call_id);

}  // namespace quantlab::eval
