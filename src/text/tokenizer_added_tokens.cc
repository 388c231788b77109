#include "text/tokenizer_added_tokens.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstring>

#include "text/utf8.h"

namespace quantlab::text {

namespace {

// Unicode White_Space (what Rust's regex `\s` matches, used by lstrip/rstrip).
bool is_white_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

// Rust regex `\w`: letters, marks, decimal digits, letter numbers, connector punctuation.
bool is_word_char(char32_t cp) {
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return cp == 0x200C || cp == 0x200D;  // Join_Control
  }
}

// The code point that ends at `end` (exclusive), or 0 when there is none or it is ill-formed.
char32_t char_before(std::string_view text, size_t end) {
  size_t start = end;
  while (start > 0 && end - start < 4) {
    --start;
    if ((static_cast<uint8_t>(text[start]) & 0xC0) != 0x80) break;
  }
  if (start == end) return 0;
  const std::string_view tail = text.substr(start, end - start);
  return valid_sequence_length(tail) == tail.size() ? decode_valid_sequence(tail) : 0;
}

char32_t char_at(std::string_view text, size_t pos) {
  const std::string_view rest = text.substr(pos);
  return valid_sequence_length(rest) > 0 ? decode_valid_sequence(rest) : 0;
}

size_t skip_white_space_backward(std::string_view text, size_t end) {
  while (end > 0) {
    const char32_t cp = char_before(text, end);
    if (cp == 0 || !is_white_space(cp)) break;
    std::string utf8;
    append_utf8(utf8, cp);
    end -= utf8.size();
  }
  return end;
}

size_t skip_white_space_forward(std::string_view text, size_t pos) {
  while (pos < text.size()) {
    const size_t length = valid_sequence_length(text.substr(pos));
    if (length == 0 || !is_white_space(decode_valid_sequence(text.substr(pos)))) break;
    pos += length;
  }
  return pos;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  for (uint32_t i = 0; i < tokens_.size(); ++i) {
    if (tokens_[i].content.empty()) continue;  // Hugging Face ignores empty added tokens
    by_first_byte_[static_cast<uint8_t>(tokens_[i].content[0])].push_back(i);
  }
  for (auto& candidates : by_first_byte_) {
    std::stable_sort(candidates.begin(), candidates.end(), [&](uint32_t a, uint32_t b) {
      return tokens_[a].content.size() > tokens_[b].content.size();
    });
  }
}

// Leftmost-longest match starting at or after `from`.
bool AddedTokenMatcher::find_next(std::string_view text, size_t from, Match& match) const {
  for (size_t pos = from; pos < text.size(); ++pos) {
    const auto& candidates = by_first_byte_[static_cast<uint8_t>(text[pos])];
    for (uint32_t index : candidates) {
      const std::string& content = tokens_[index].content;
      if (content.size() <= text.size() - pos &&
          std::memcmp(text.data() + pos, content.data(), content.size()) == 0) {
        match = {pos, pos + content.size(), &tokens_[index]};
        return true;
      }
    }
  }
  return false;
}

void AddedTokenMatcher::split(std::string_view text, std::vector<Segment>& segments) const {
  segments.clear();
  size_t covered = 0;  // text before this is already in segments
  size_t search_from = 0;
  Match match{};
  while (!tokens_.empty() && find_next(text, search_from, match)) {
    search_from = match.end;
    const AddedToken& token = *match.token;
    if (token.single_word) {
      const bool word_before = match.begin > 0 && is_word_char(char_before(text, match.begin));
      const bool word_after = match.end < text.size() && is_word_char(char_at(text, match.end));
      if (word_before || word_after) continue;
    }
    size_t begin = match.begin;
    size_t end = match.end;
    if (token.lstrip) begin = std::max(skip_white_space_backward(text, begin), covered);
    if (token.rstrip) end = skip_white_space_forward(text, end);
    if (begin > covered) segments.push_back({covered, begin, -1});
    segments.push_back({begin, end, token.id});
    covered = end;
    search_from = std::max(search_from, end);
  }
  if (covered < text.size()) segments.push_back({covered, text.size(), -1});
}

}  // namespace quantlab::text
