// Streaming a chat reply's content while it is generated, so that the pieces sent join to exactly the
// `content` of the finished reply. A piece is sent only once it is final: text that could still turn
// out to be the start of a `<think>`/`<tool_call>` tag or of a stop string is held back, and nothing
// after a `<tool_call>` tag is streamed (tool calls go out whole at the end, as vLLM and mlx-lm send them).
#pragma once

#include <functional>
#include <string>

namespace quantlab::serve {

class ContentStream {
 public:
  // `sink` may be empty (nothing streamed). `hold_back`: the longest stop string's length.
  ContentStream(std::function<bool(const std::string&)> sink, size_t hold_back, bool prompt_opened_think)
      : sink_(std::move(sink)), hold_back_(hold_back), opened_think_(prompt_opened_think) {}

  // The reply's text so far; sends what became final. False when the sink refused (client gone).
  bool update(const std::string& text);
  // The finished reply's content: sends what is still missing of it.
  bool finish(const std::string& content);

  const std::string& sent() const { return sent_; }

 private:
  bool send_up_to(const std::string& content);

  std::function<bool(const std::string&)> sink_;
  size_t hold_back_;
  bool opened_think_;
  std::string sent_;
};

}  // namespace quantlab::serve
