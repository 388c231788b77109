// Parsing a model reply in the Qwen / Hermes format: `<think>…</think>` reasoning, visible text, and
// `<tool_call>{"name": …, "arguments": {…}}</tool_call>` blocks (model-spec §5).
//
// The scan follows mlx-lm's server state machine: normal →<think>→ reasoning →</think>→ normal;
// normal or reasoning →<tool_call>→ tool →</tool_call>→ back. A reply that contains `</think>`
// before any `<think>` began inside the reasoning (the prompt opened the think block).
// Unlike mlx-lm, malformed calls are kept, with an error string, so a benchmark can count them.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace quantlab::text {

struct ToolCall {
  std::string name;                  // "" when the block did not yield a name
  nlohmann::ordered_json arguments;  // object (or whatever JSON value the model gave); null if none
  std::string raw;                   // the text between the tags, as generated
  std::string error;                 // empty when the call is well formed

  bool ok() const { return error.empty(); }
};

struct ParsedReply {
  std::string content;    // visible text outside think and tool_call blocks, whitespace-trimmed
  std::string reasoning;  // text of the think block(s), whitespace-trimmed
  std::vector<ToolCall> tool_calls;
  bool starts_with_tool_call = false;  // see starts_with_tool_call()
};

ParsedReply parse_reply(std::string_view text);

// The benchmark's "tool" vs "direct" decision: true when the reply, after optional whitespace and
// an optional empty (whitespace-only) `<think></think>` block, begins with `<tool_call>`. With
// skip_reasoning, a non-empty leading think block is skipped as well.
bool starts_with_tool_call(std::string_view text, bool skip_reasoning = false);

// `text` without the leading and trailing whitespace parse_reply trims from content and reasoning
// (space, tab, newline, carriage return, form feed, vertical tab).
std::string_view trim_reply_space(std::string_view text);

}  // namespace quantlab::text
