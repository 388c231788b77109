// What a stranger sends to `quantlab serve` and what a server sends back to `bench --model NAME=URL`:
// request bodies for /v1/chat/completions and /v1/completions (accepted, or refused with an ApiError
// naming a field), and reply texts (content, think blocks, tool calls) split for the client and streamed
// piece by piece. Input: selector byte, then the body or reply text.
//   'C' chat request, 'P' completion request, 'R' a reply text, anything else: a chat.completion message
//   parsed by the client.
#include <string>

#include "fuzz_support.h"
#include "serve/api_error.h"
#include "serve/content_stream.h"
#include "serve/engine.h"
#include "serve/openai_client.h"
#include "serve/request.h"

namespace {

using namespace quantlab;

void fuzz_request(std::string_view body, bool chat) {
  try {
    const nlohmann::ordered_json j = serve::parse_body(std::string(body));
    if (chat) {
      const serve::ChatRequestFields r = serve::parse_chat_request(j, {});
      fuzz::require(r.messages.is_array() && !r.messages.empty(), "accepted chats have messages");
      fuzz::require(!r.decode.max_tokens || *r.decode.max_tokens >= 1, "max_tokens at least 1");
    } else {
      const serve::CompletionRequestFields r = serve::parse_completion_request(j, {});
      fuzz::require(!r.prompts.empty(), "accepted completions have a prompt");
      fuzz::require(r.decode.max_tokens.has_value(), "completions always have a budget");
    }
  } catch (const serve::ApiError& e) {
    fuzz::require(e.status() == 400, "request refusals are 400");
    fuzz::require(!std::string(e.what()).empty(), "refusals say why");
  }
}

// The streamed pieces of a reply join to the content of the finished reply, at any step size.
void fuzz_reply(std::string_view text) {
  for (bool opened_think : {false, true}) {
    serve::ChatReply reply;
    reply.text = std::string(text);
    serve::split_reply(reply, opened_think);
    for (size_t step : {size_t{1}, size_t{7}}) {
      std::string sent;
      serve::ContentStream stream([&](const std::string& piece) { sent += piece; return true; }, step % 3,
                                  opened_think);
      for (size_t n = step; n < text.size() + step; n += step) stream.update(reply.text.substr(0, std::min(n, text.size())));
      fuzz::require(reply.content.starts_with(sent), "what was streamed is never taken back");
      stream.finish(reply.content);
      fuzz::require(sent == reply.content, "streamed pieces join to the finished content");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0]) {
    case 'C':
      fuzz_request(rest, true);
      break;
    case 'P':
      fuzz_request(rest, false);
      break;
    case 'R':
      fuzz_reply(rest);
      break;
    default: {
      const nlohmann::ordered_json message = nlohmann::ordered_json::parse(rest, nullptr, false);
      if (!message.is_discarded() && message.is_object()) (void)quantlab::serve::reply_text(message);
    }
  }
  return 0;
}
