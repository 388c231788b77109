#include "serve/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"
#include "serve/api_error.h"
#include "serve/content_stream.h"

namespace quantlab::serve {

namespace {

// The reply parser's whitespace, so contents built here match the ones it builds.
std::string_view trim(std::string_view s) { return text::trim_reply_space(s); }

bool is_stop_token(const chat::ChatModel& chat, int32_t id) {
  const auto& stops = chat.stop_tokens();
  return std::find(stops.begin(), stops.end(), id) != stops.end();
}

// Cuts `text` before the first stop string it contains; true when it did.
bool cut_at_stop_string(std::string& text, const std::vector<std::string>& stop) {
  size_t cut = std::string::npos;
  for (const std::string& s : stop) cut = std::min(cut, text.find(s));
  if (cut == std::string::npos) return false;
  text.resize(cut);
  return true;
}

size_t longest(const std::vector<std::string>& strings) {
  size_t n = 0;
  for (const std::string& s : strings) n = std::max(n, s.size());
  return n;
}

const char* finish_reason(model::StopReason reason, bool stopped_by_string) {
  if (stopped_by_string) return "stop";
  return reason == model::StopReason::kMaxTokens || reason == model::StopReason::kContextFull ? "length" : "stop";
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

Engine::Engine(const chat::ChatModel& chat, size_t threads, size_t context)
    : chat_(chat), pool_(threads), session_(chat.model(), pool_, model::SessionOptions{.max_context = context}) {}

model::GenerationOptions Engine::options_for(const DecodeSettings& d, size_t prompt_tokens, const std::string& field) const {
  const size_t context = session_.max_context();
  if (prompt_tokens >= context)
    throw ApiError(400, "invalid_request_error", field,
                   fmt::format("the prompt has {} tokens; this server's context is {} (--ctx)", prompt_tokens, context),
                   "context_length_exceeded");
  const size_t room = context - prompt_tokens;
  const size_t max_tokens = d.max_tokens.value_or(room);
  if (max_tokens > room)
    throw ApiError(400, "invalid_request_error", "max_tokens",
                   fmt::format("'max_tokens' {} and the prompt's {} tokens exceed this server's context of {} (--ctx)",
                               max_tokens, prompt_tokens, context),
                   "context_length_exceeded");
  model::GenerationOptions options;
  options.max_tokens = max_tokens;
  options.sampling = {d.temperature, 0, d.top_p, d.seed};
  options.stop_tokens = chat_.stop_tokens();
  return options;
}

PreparedChat Engine::prepare_chat(const ChatRequestFields& request) const {
  text::ChatRequest chat_request;
  chat_request.messages = request.messages;
  chat_request.tools = request.tools;
  chat_request.extra = request.template_kwargs;
  std::string prompt_text;
  try {
    prompt_text = chat_.chat_template().render(chat_request);
  } catch (const Error& e) {
    throw ApiError(400, "invalid_request_error", "messages", fmt::format("the chat template refused the messages: {}", e.what()));
  }
  PreparedChat p;
  p.prompt = chat_.tokenizer().encode(prompt_text);
  p.opened_think = trim(prompt_text).ends_with("<think>");
  p.options = options_for(request.decode, p.prompt.size(), "messages");
  p.stop = p.stop;
  return p;
}

ChatReply Engine::run_chat(const PreparedChat& p, const ContentSink& on_content) {
  ChatReply reply;
  text::StreamingDetokenizer detokenizer(chat_.tokenizer());
  ContentStream stream(on_content, longest(p.stop), p.opened_think);
  bool stopped_by_string = false;
  chat::DecodeHooks hooks;
  hooks.on_token = [&](int32_t id) {
    if (is_stop_token(chat_, id)) return true;  // the decode ends on it by itself
    reply.text += detokenizer.push(id);
    if (cut_at_stop_string(reply.text, p.stop)) {
      stopped_by_string = true;
      return false;
    }
    return stream.update(reply.text);
  };
  session_.reset();
  const int64_t start = now_ns();
  const model::GenerationResult result = chat::respond(session_, p.prompt, p.options, hooks);
  reply.seconds = static_cast<double>(now_ns() - start) * 1e-9;
  if (!stopped_by_string) {
    reply.text += detokenizer.finish();
    stopped_by_string = cut_at_stop_string(reply.text, p.stop);
  }
  reply.prompt_tokens = p.prompt.size();
  reply.completion_tokens = result.tokens.size();
  reply.finish_reason = finish_reason(result.reason, stopped_by_string);
  split_reply(reply, p.opened_think);
  stream.finish(reply.content);
  return reply;
}

// The text outside `<think>…</think>` blocks, trimmed: what parse_reply keeps as content when tool
// calls are taken as plain text.
std::string without_reasoning(std::string_view text) {
  constexpr std::string_view kOpen = "<think>", kClose = "</think>";
  std::string kept;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t open = text.find(kOpen, pos);
    kept.append(text.substr(pos, open == std::string_view::npos ? std::string_view::npos : open - pos));
    if (open == std::string_view::npos) break;
    const size_t close = text.find(kClose, open + kOpen.size());
    if (close == std::string_view::npos) break;  // still thinking
    pos = close + kClose.size();
  }
  return std::string(trim(kept));
}

std::string reply_for_parsing(std::string_view text, bool prompt_opened_think) {
  // The parser takes a `</think>` before any `<think>` as the end of reasoning the prompt began. The
  // server knows whether its prompt did: when it did not, an empty block first makes a stray
  // `</think>` plain text, so content streamed before it is never taken back.
  return (prompt_opened_think ? "<think>" : "<think></think>") + std::string(text);
}

void split_reply(ChatReply& reply, bool prompt_opened_think) {
  const text::ParsedReply parsed = text::parse_reply(reply_for_parsing(reply.text, prompt_opened_think));
  reply.reasoning = parsed.reasoning;
  const bool all_ok = std::all_of(parsed.tool_calls.begin(), parsed.tool_calls.end(),
                                  [](const text::ToolCall& c) { return c.ok(); });
  if (all_ok) {
    reply.content = parsed.content;
    reply.tool_calls = parsed.tool_calls;
    if (!reply.tool_calls.empty()) reply.finish_reason = "tool_calls";
    return;
  }
  // A call that did not parse: the reply as written, tool-call blocks included, think blocks left out.
  reply.content = without_reasoning(reply_for_parsing(reply.text, prompt_opened_think));
  reply.tool_calls.clear();
}

TokenLogprob token_logprob(std::span<const float> logits, int32_t chosen, size_t top) {
  double max = -INFINITY;
  for (float x : logits) max = std::max(max, static_cast<double>(x));
  double sum = 0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - max);
  const double log_z = max + std::log(sum);
  TokenLogprob t;
  t.id = chosen;
  t.logprob = static_cast<double>(logits[static_cast<size_t>(chosen)]) - log_z;
  if (top == 0) return t;
  std::vector<int32_t> order(logits.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
  top = std::min(top, order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<ptrdiff_t>(top), order.end(), [&](int32_t a, int32_t b) {
    return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)] ||
           (logits[static_cast<size_t>(a)] == logits[static_cast<size_t>(b)] && a < b);
  });
  for (size_t i = 0; i < top; ++i)
    t.top.emplace_back(order[i], static_cast<double>(logits[static_cast<size_t>(order[i])]) - log_z);
  return t;
}

PreparedCompletion Engine::prepare_completion(const Prompt& prompt, const CompletionRequestFields& request) const {
  PreparedCompletion p;
  if (const std::string* text = std::get_if<std::string>(&prompt)) {
    p.prompt_text = *text;
    p.prompt = chat_.tokenizer().encode(*text);
  } else {
    p.prompt = std::get<std::vector<int32_t>>(prompt);
  }
  if (p.prompt.empty()) bad_field("prompt", "the prompt is empty");
  const size_t vocab = static_cast<size_t>(chat_.config().vocab_size);
  for (int32_t id : p.prompt)
    if (static_cast<size_t>(id) >= vocab) bad_field("prompt", "token id {} is outside the vocabulary ({} tokens)", id, vocab);
  p.options = options_for(request.decode, p.prompt.size(), "prompt");
  p.stop = p.stop;
  p.logprobs = request.logprobs;
  p.echo = request.echo;
  return p;
}

CompletionReply Engine::run_completion(const PreparedCompletion& p) {
  const text::Tokenizer& tokenizer = chat_.tokenizer();
  const std::vector<int32_t>& ids = p.prompt;
  const size_t vocab = static_cast<size_t>(chat_.config().vocab_size);
  const model::GenerationOptions& options = p.options;
  const bool want_logprobs = p.logprobs.has_value();
  const size_t top = p.logprobs.value_or(0);

  CompletionReply reply;
  reply.prompt_tokens = ids.size();
  session_.reset();
  std::span<const int32_t> to_generate_from(ids);
  if (p.echo) {
    reply.text = p.prompt_text ? *p.prompt_text : tokenizer.decode(ids);
    if (want_logprobs) {
      reply.tokens.push_back({ids[0], std::nullopt, {}});
      if (ids.size() > 1) {
        // Rows 0..n-2 predict tokens 1..n-1; the last prompt token is left for the decode to prefill.
        const std::vector<float> logits = session_.forward(to_generate_from.first(ids.size() - 1), /*all_logits=*/true);
        for (size_t i = 1; i < ids.size(); ++i)
          reply.tokens.push_back(token_logprob(std::span(logits).subspan((i - 1) * vocab, vocab), ids[i], top));
      }
      to_generate_from = to_generate_from.last(1);
    }
  }
  if (options.max_tokens == 0) {
    reply.finish_reason = "length";
    return reply;
  }
  text::StreamingDetokenizer detokenizer(tokenizer);
  std::string generated;
  std::vector<float> step_logits;
  bool stopped_by_string = false;
  chat::DecodeHooks hooks;
  if (want_logprobs) hooks.on_logits = [&](size_t, std::span<const float> l) { step_logits.assign(l.begin(), l.end()); };
  hooks.on_token = [&](int32_t id) {
    if (is_stop_token(chat_, id)) return true;
    if (want_logprobs) reply.tokens.push_back(token_logprob(step_logits, id, top));
    generated += detokenizer.push(id);
    stopped_by_string = cut_at_stop_string(generated, p.stop);
    return !stopped_by_string;
  };
  const model::GenerationResult result = chat::respond(session_, to_generate_from, options, hooks);
  if (!stopped_by_string) {
    generated += detokenizer.finish();
    stopped_by_string = cut_at_stop_string(generated, p.stop);
  }
  reply.text += generated;
  reply.completion_tokens = result.tokens.size();
  reply.finish_reason = finish_reason(result.reason, stopped_by_string);
  return reply;
}

}  // namespace quantlab::serve
