// The model behind the server: one session on one loaded model, running one request at a time (the
// server's queue orders them). Turns a parsed chat request into a reply — rendered with the model's
// chat template and the request's tools, decoded with its sampling settings, cut at stop strings,
// tool calls parsed by the model's parser — and a completion request into text with per-token
// log-probabilities (the engine's own log-softmax of its float32 logits).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "chat/chat_model.h"
#include "core/thread_pool.h"
#include "model/session.h"
#include "serve/request.h"
#include "text/tool_calls.h"

namespace quantlab::serve {

struct ChatReply {
  std::string text;          // the generated text, stop token left out, cut before a stop string
  std::string content;       // what the client sees as `content` (see reply_content)
  std::string reasoning;     // the think block's text
  std::vector<text::ToolCall> tool_calls;  // well-formed calls only (empty when any was malformed)
  std::string finish_reason;  // "stop", "length" or "tool_calls"
  size_t prompt_tokens = 0, completion_tokens = 0;
  double seconds = 0;         // prefill + decode
};

// One token's log-probability and the most likely alternatives at its position.
struct TokenLogprob {
  int32_t id = 0;
  std::optional<double> logprob;  // none for a prompt's first token (nothing predicts it)
  std::vector<std::pair<int32_t, double>> top;  // most likely first
};

struct CompletionReply {
  std::string text;             // the prompt's text first when echoed, then the generated text
  std::vector<TokenLogprob> tokens;  // with logprobs: echoed prompt tokens, then generated ones
  std::string finish_reason;    // "stop" or "length"
  size_t prompt_tokens = 0, completion_tokens = 0;
};

// A request checked and turned into token ids, ready to run. Preparing needs no session, so the server
// does it on the request's own thread and can answer a bad request at once, before it queues.
struct PreparedChat {
  std::vector<int32_t> prompt;
  bool opened_think = false;  // the rendered prompt ends inside a think block
  model::GenerationOptions options;
  std::vector<std::string> stop;
};

struct PreparedCompletion {
  std::vector<int32_t> prompt;
  std::optional<std::string> prompt_text;  // when given as text (echoed as given)
  model::GenerationOptions options;
  std::vector<std::string> stop;
  std::optional<size_t> logprobs;
  bool echo = false;
};

// Called with each piece of `content` as it becomes final; returning false cancels the reply (the
// client went away).
using ContentSink = std::function<bool(const std::string& piece)>;

class Engine {
 public:
  // `context`: positions of the session's KV cache (prompt + reply).
  Engine(const chat::ChatModel& chat, size_t threads, size_t context);

  const chat::ChatModel& chat() const { return chat_; }
  size_t context() const { return session_.max_context(); }

  // Thread-safe. Throw ApiError (400) naming the field: a template that refuses the messages, a token
  // id outside the vocabulary, a prompt and max_tokens that do not fit the context.
  PreparedChat prepare_chat(const ChatRequestFields& request) const;
  PreparedCompletion prepare_completion(const Prompt& prompt, const CompletionRequestFields& request) const;

  // One at a time (the session is shared).
  ChatReply run_chat(const PreparedChat& chat, const ContentSink& on_content = {});
  CompletionReply run_completion(const PreparedCompletion& completion);

 private:
  model::GenerationOptions options_for(const DecodeSettings& d, size_t prompt_tokens, const std::string& field) const;

  const chat::ChatModel& chat_;
  ThreadPool pool_;
  model::Session session_;
};

// The reply's client-facing parts from its text: content without think and tool-call blocks; the
// calls when every one parsed; a call that did not parse stays in the content as it was written
// (the client sees what the model said, and a benchmark scores it as text).
void split_reply(ChatReply& reply, bool prompt_opened_think);
// The text split_reply and the content stream parse: the reply after what the prompt opened.
std::string reply_for_parsing(std::string_view text, bool prompt_opened_think);

// The log-probabilities of `logits` (log-softmax in double) for `chosen` and the `top` most likely.
TokenLogprob token_logprob(std::span<const float> logits, int32_t chosen, size_t top);

}  // namespace quantlab::serve
