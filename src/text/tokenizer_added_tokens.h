// Added tokens (Hugging Face `added_tokens`): literals such as "<|im_start|>" or "<think>" that are cut
// out of the text before normalization and pre-tokenization and map straight to their id.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace quantlab::text {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;      // removed by decode(skip_special_tokens=true)
  bool normalized = false;   // matched in the normalized text instead of the raw text
  bool lstrip = false;       // the match swallows the whitespace on its left
  bool rstrip = false;       // ... and on its right
  bool single_word = false;  // only matches when not inside a word
};

// Finds added tokens in a text the way Hugging Face's AddedVocabulary does (an Aho-Corasick automaton
// with leftmost-longest semantics): the leftmost match wins, the longest among those starting there,
// matches do not overlap, and a single_word match inside a word is skipped.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  struct Segment {
    size_t begin;
    size_t end;
    int32_t id;  // the added token's id, or -1 for plain text between tokens
  };
  // Cuts text into plain segments and added tokens, in order, covering all of it (no empty segments).
  void split(std::string_view text, std::vector<Segment>& segments) const;
  bool empty() const { return tokens_.empty(); }

 private:
  struct Match {
    size_t begin;
    size_t end;
    const AddedToken* token;
  };
  bool find_next(std::string_view text, size_t from, Match& match) const;

  std::vector<AddedToken> tokens_;
  // Indices into tokens_ by first byte, longest content first, so the first hit is the longest.
  std::array<std::vector<uint32_t>, 256> by_first_byte_;
};

}  // namespace quantlab::text
