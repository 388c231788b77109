#include "serve/response.h"

#include <fmt/format.h>

namespace quantlab::serve {

using ojson = nlohmann::ordered_json;

std::string dump(const ojson& body) { return body.dump(-1, ' ', false, ojson::error_handler_t::replace); }

std::string sse_event(const ojson& body) { return "data: " + dump(body) + "\n\n"; }

ojson usage_json(size_t prompt_tokens, size_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

ojson tool_calls_json(const std::vector<text::ToolCall>& calls, const std::string& request_id) {
  ojson list = ojson::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    const ojson& args = calls[i].arguments;
    list.push_back({{"id", fmt::format("call_{}_{}", request_id, i)},
                    {"type", "function"},
                    {"function", {{"name", calls[i].name}, {"arguments", args.is_null() ? "{}" : dump(args)}}}});
  }
  return list;
}

namespace {

ojson chat_message(const ResponseHeader& h, const ChatReply& reply) {
  ojson message = {{"role", "assistant"}};
  // OpenAI sends null content beside tool calls when the model said nothing else.
  message["content"] = reply.content.empty() && !reply.tool_calls.empty() ? ojson() : ojson(reply.content);
  if (!reply.reasoning.empty()) message["reasoning_content"] = reply.reasoning;  // vLLM's and mlx-lm's field
  if (!reply.tool_calls.empty()) message["tool_calls"] = tool_calls_json(reply.tool_calls, h.id);
  return message;
}

}  // namespace

ojson chat_completion_json(const ResponseHeader& h, const ChatReply& reply) {
  return {{"id", h.id},
          {"object", "chat.completion"},
          {"created", h.created},
          {"model", h.model},
          {"choices", ojson::array({{{"index", 0},
                                     {"message", chat_message(h, reply)},
                                     {"logprobs", nullptr},
                                     {"finish_reason", reply.finish_reason}}})},
          {"usage", usage_json(reply.prompt_tokens, reply.completion_tokens)}};
}

ojson chat_chunk_json(const ResponseHeader& h, const ojson& delta, const std::string& finish_reason) {
  ojson choice = {{"index", 0}, {"delta", delta}, {"logprobs", nullptr}};
  choice["finish_reason"] = finish_reason.empty() ? ojson() : ojson(finish_reason);
  return {{"id", h.id},
          {"object", "chat.completion.chunk"},
          {"created", h.created},
          {"model", h.model},
          {"choices", ojson::array({choice})}};
}

ojson usage_chunk_json(const ResponseHeader& h, const ChatReply& reply) {
  return {{"id", h.id},
          {"object", "chat.completion.chunk"},
          {"created", h.created},
          {"model", h.model},
          {"choices", ojson::array()},
          {"usage", usage_json(reply.prompt_tokens, reply.completion_tokens)}};
}

namespace {

ojson legacy_logprobs(const CompletionReply& reply, const text::Tokenizer& tokenizer) {
  ojson tokens = ojson::array(), token_logprobs = ojson::array(), top_logprobs = ojson::array(),
        text_offset = ojson::array();
  size_t offset = 0;
  for (const TokenLogprob& t : reply.tokens) {
    const std::string piece(tokenizer.token_bytes(t.id));
    tokens.push_back(piece);
    token_logprobs.push_back(t.logprob ? ojson(*t.logprob) : ojson());
    if (!t.logprob) {
      top_logprobs.push_back(nullptr);
    } else {
      ojson top = ojson::object();
      for (const auto& [id, lp] : t.top) top.emplace(std::string(tokenizer.token_bytes(id)), lp);
      top_logprobs.push_back(std::move(top));
    }
    text_offset.push_back(offset);
    offset += piece.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top_logprobs},
          {"text_offset", text_offset}};
}

}  // namespace

ojson completion_choice_json(size_t index, const CompletionReply& reply, bool logprobs, const text::Tokenizer& tokenizer) {
  return {{"index", index},
          {"text", reply.text},
          {"logprobs", logprobs ? legacy_logprobs(reply, tokenizer) : ojson()},
          {"finish_reason", reply.finish_reason}};
}

ojson models_json(const std::string& model, int64_t created) {
  return {{"object", "list"},
          {"data", ojson::array({{{"id", model}, {"object", "model"}, {"created", created}, {"owned_by", "quantlab"}}})}};
}

}  // namespace quantlab::serve
