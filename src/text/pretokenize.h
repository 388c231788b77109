// Pre-tokenization for byte-level BPE, as Hugging Face tokenizers does it: zero or more `Split`
// steps (regex, behaviour "Isolated": matches and the gaps between them each become a pre-token)
// followed by one `ByteLevel` step (optional prefix space, optional GPT-2 regex split). The
// byte-level character mapping itself is left to the BPE model, which works on raw bytes.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace quantlab::text {

// The GPT-2 split pattern that a ByteLevel pre-tokenizer with use_regex=true applies.
inline constexpr std::string_view kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// A PCRE2 pattern compiled with UTF + UCP (so \s, \p{L} are Unicode-aware) and MATCH_INVALID_UTF (so
// ill-formed input bytes never match and never make matching fail), JIT-compiled when available.
// Immutable after construction; find_all is thread-safe.
class Regex {
 public:
  // Throws Error(kInvalidInput) with `context` and PCRE2's message when the pattern does not compile.
  // literal=true matches the pattern text verbatim (Split with {"String": ...}).
  Regex(std::string_view pattern, bool literal, std::string_view context);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;

  struct Span {
    size_t begin;
    size_t end;
  };
  // Appends the successive non-overlapping, non-empty matches in subject (leftmost, backtracking
  // semantics like Oniguruma, which Hugging Face uses).
  void find_all(std::string_view subject, std::vector<Span>& matches) const;

 private:
  struct Compiled;
  std::unique_ptr<Compiled> compiled_;
};

struct ByteLevelOptions {
  bool add_prefix_space = false;  // prepend ' ' to each pre-token that does not start with one
  bool use_regex = false;         // split with kGpt2SplitPattern
};

class PreTokenizer {
 public:
  PreTokenizer(std::vector<Regex> isolated_splits, ByteLevelOptions byte_level);

  // Splits one normalized text segment into pre-tokens (raw bytes, never empty). The views point into
  // `text` or, when prefix spaces are added, into `storage`, which the caller keeps alive.
  void split(std::string_view text, std::vector<std::string_view>& pieces,
             std::string& storage) const;

 private:
  void apply_split(const Regex& regex, std::vector<std::string_view>& pieces) const;
  void add_prefix_spaces(std::vector<std::string_view>& pieces, std::string& storage) const;

  std::vector<Regex> splits_;
  ByteLevelOptions byte_level_;
  std::unique_ptr<Regex> gpt2_regex_;  // set when byte_level_.use_regex
};

}  // namespace quantlab::text
