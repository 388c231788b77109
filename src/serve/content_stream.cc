#include "serve/content_stream.h"

#include <array>
#include <string_view>

#include "serve/engine.h"
#include "text/tool_calls.h"

namespace quantlab::serve {

namespace {

constexpr std::array<std::string_view, 4> kTags = {"<think>", "</think>", "<tool_call>", "</tool_call>"};

// The length of `text` without a tail that may still grow into a tag.
size_t without_partial_tag(std::string_view text) {
  const size_t lt = text.rfind('<');
  if (lt == std::string_view::npos) return text.size();
  const std::string_view tail = text.substr(lt);
  for (std::string_view tag : kTags)
    if (tail.size() < tag.size() && tag.starts_with(tail)) return lt;
  return text.size();
}

// Backs `cut` off the middle of a UTF-8 sequence.
size_t char_boundary(std::string_view text, size_t cut) {
  while (cut > 0 && cut < text.size() && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return cut;
}

}  // namespace

bool ContentStream::update(const std::string& text) {
  if (!sink_) return true;
  std::string_view safe = text;
  safe = safe.substr(0, char_boundary(safe, safe.size() > hold_back_ ? safe.size() - hold_back_ : 0));
  if (const size_t call = safe.find("<tool_call>"); call != std::string_view::npos) safe = safe.substr(0, call);
  safe = safe.substr(0, without_partial_tag(safe));
  return send_up_to(text::parse_reply(reply_for_parsing(safe, opened_think_)).content);
}

bool ContentStream::finish(const std::string& content) { return !sink_ || send_up_to(content); }

bool ContentStream::send_up_to(const std::string& content) {
  // Content only grows at its end while the reply is generated; anything else (a think block closing
  // late) is left to the finished reply.
  if (content.size() <= sent_.size() || content.compare(0, sent_.size(), sent_) != 0) return true;
  std::string piece = content.substr(sent_.size());
  sent_ = content;
  return sink_(piece);
}

}  // namespace quantlab::serve
