// The JSON bodies the server sends, in OpenAI's shapes: chat.completion, chat.completion.chunk
// (server-sent events), text_completion with legacy logprobs, and the model list.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "serve/engine.h"
#include "text/tokenizer.h"

namespace quantlab::serve {

// What every response of one request shares.
struct ResponseHeader {
  std::string id;     // "chatcmpl-…" / "cmpl-…"
  std::string model;  // the served model id
  int64_t created = 0;  // Unix seconds
};

nlohmann::ordered_json usage_json(size_t prompt_tokens, size_t completion_tokens);

// OpenAI's tool_calls list: ids "call_<request id>_<i>", arguments as a JSON string.
nlohmann::ordered_json tool_calls_json(const std::vector<text::ToolCall>& calls, const std::string& request_id);

nlohmann::ordered_json chat_completion_json(const ResponseHeader& h, const ChatReply& reply);

// One streamed chunk with `delta` (and a finish reason when given).
nlohmann::ordered_json chat_chunk_json(const ResponseHeader& h, const nlohmann::ordered_json& delta,
                                       const std::string& finish_reason = "");
// The last chunk of a stream with stream_options.include_usage: no choices, the usage.
nlohmann::ordered_json usage_chunk_json(const ResponseHeader& h, const ChatReply& reply);

// choices[i] of a text completion; logprobs in the legacy shape (tokens, token_logprobs, top_logprobs,
// text_offset) when asked for.
nlohmann::ordered_json completion_choice_json(size_t index, const CompletionReply& reply, bool logprobs,
                                              const text::Tokenizer& tokenizer);

nlohmann::ordered_json models_json(const std::string& model, int64_t created);

// A server-sent event line: "data: <json>\n\n".
std::string sse_event(const nlohmann::ordered_json& body);

// JSON text that survives invalid UTF-8 in a token's bytes (replaced by U+FFFD).
std::string dump(const nlohmann::ordered_json& body);

}  // namespace quantlab::serve
