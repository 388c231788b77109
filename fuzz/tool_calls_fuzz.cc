// A model's reply is outside input too: the tool-call parser must take any text (think blocks,
// unbalanced tags, broken JSON) and report errors in its result, never by crashing or throwing.
#include "fuzz_support.h"
#include "text/tool_calls.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace quantlab;
  const std::string_view reply(reinterpret_cast<const char*>(data), size);
  // No exception at all here: a malformed call is a result (ToolCall::error), not a failure.
  const text::ParsedReply parsed = text::parse_reply(reply);
  fuzz::require(parsed.content.size() <= reply.size(), "content is part of the reply");
  for (const text::ToolCall& call : parsed.tool_calls) {
    fuzz::require(reply.find(call.raw) != std::string_view::npos, "a call's raw text is in the reply");
    fuzz::require(call.ok() == call.error.empty(), "ok() agrees with error");
  }
  const bool starts = text::starts_with_tool_call(reply, false);
  fuzz::require(!starts || text::starts_with_tool_call(reply, true), "skipping reasoning keeps a leading call");
  return 0;
}
