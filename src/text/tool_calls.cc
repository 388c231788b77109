#include "text/tool_calls.h"

#include <algorithm>

namespace quantlab::text {
namespace {

using json = nlohmann::ordered_json;

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";
constexpr std::string_view kCallOpen = "<tool_call>";
constexpr std::string_view kCallClose = "</tool_call>";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view skip_space(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  return s;
}

// Decodes the JSON inside a <tool_call> block into name and arguments, recording what is wrong.
ToolCall decode_call(std::string_view inner, bool terminated) {
  ToolCall call;
  call.raw = std::string(inner);
  std::vector<std::string> problems;
  if (!terminated) problems.push_back("unterminated <tool_call> block");
  json body = json::parse(trim(inner), nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    problems.push_back("tool call is not valid JSON");
  } else if (!body.is_object()) {
    problems.push_back("tool call JSON is not an object");
  } else {
    if (auto it = body.find("name"); it != body.end() && it->is_string()) {
      call.name = it->get<std::string>();
    } else {
      problems.push_back("tool call has no string \"name\"");
    }
    auto args = body.find("arguments");
    if (args == body.end()) args = body.find("parameters");  // Llama-style spelling
    if (args == body.end()) {
      problems.push_back("tool call has no \"arguments\"");
    } else if (args->is_string()) {
      // Some models emit the arguments as a JSON-encoded string; decode it when it parses.
      json decoded = json::parse(args->get<std::string>(), nullptr, false);
      call.arguments = decoded.is_discarded() ? *args : decoded;
    } else {
      call.arguments = *args;
    }
  }
  for (const auto& p : problems) call.error += (call.error.empty() ? "" : "; ") + p;
  return call;
}

enum class State { kNormal, kReasoning };

}  // namespace

ParsedReply parse_reply(std::string_view text) {
  ParsedReply reply;
  reply.starts_with_tool_call = starts_with_tool_call(text);
  std::string content, reasoning;
  size_t first_open = text.find(kThinkOpen), first_close = text.find(kThinkClose);
  State state = (first_close != std::string_view::npos && first_close < first_open) ? State::kReasoning : State::kNormal;
  size_t pos = 0;
  while (pos < text.size()) {
    std::string& sink = state == State::kNormal ? content : reasoning;
    std::string_view think_marker = state == State::kNormal ? kThinkOpen : kThinkClose;
    size_t think_at = text.find(think_marker, pos);
    size_t call_at = text.find(kCallOpen, pos);
    size_t next = std::min(think_at, call_at);
    sink.append(text.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos));
    if (next == std::string_view::npos) break;
    if (next == think_at) {
      state = state == State::kNormal ? State::kReasoning : State::kNormal;
      pos = think_at + think_marker.size();
      continue;
    }
    size_t inner_start = call_at + kCallOpen.size();
    size_t close = text.find(kCallClose, inner_start);
    bool terminated = close != std::string_view::npos;
    size_t inner_end = terminated ? close : text.size();
    reply.tool_calls.push_back(decode_call(text.substr(inner_start, inner_end - inner_start), terminated));
    pos = terminated ? close + kCallClose.size() : text.size();
  }
  reply.content = std::string(trim(content));
  reply.reasoning = std::string(trim(reasoning));
  return reply;
}

std::string_view trim_reply_space(std::string_view text) { return trim(text); }

bool starts_with_tool_call(std::string_view text, bool skip_reasoning) {
  std::string_view rest = skip_space(text);
  if (rest.substr(0, kThinkOpen.size()) == kThinkOpen) {
    size_t close = rest.find(kThinkClose);
    if (close == std::string_view::npos) return false;
    std::string_view inside = rest.substr(kThinkOpen.size(), close - kThinkOpen.size());
    if (!skip_reasoning && !trim(inside).empty()) return false;
    rest = skip_space(rest.substr(close + kThinkClose.size()));
  }
  return rest.substr(0, kCallOpen.size()) == kCallOpen;
}

}  // namespace quantlab::text
