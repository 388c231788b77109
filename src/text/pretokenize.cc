#include "text/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"
#include "text/utf8.h"

namespace quantlab::text {

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

// Owns what one find_all call needs. The JIT stack starts on the machine stack (32 KiB) and is only
// replaced by a heap one when a very long match (e.g. a megabyte of spaces) runs out of it.
class MatchState {
 public:
  MatchState() : data_(pcre2_match_data_create(1, nullptr)) {
    if (data_ == nullptr) throw std::bad_alloc();
  }
  ~MatchState() {
    pcre2_match_data_free(data_);
    pcre2_match_context_free(context_);
    pcre2_jit_stack_free(jit_stack_);
  }
  MatchState(const MatchState&) = delete;
  MatchState& operator=(const MatchState&) = delete;

  pcre2_match_data* data() { return data_; }
  pcre2_match_context* context() { return context_; }
  bool grow_jit_stack() {
    if (jit_stack_ != nullptr) return false;
    context_ = pcre2_match_context_create(nullptr);
    jit_stack_ = pcre2_jit_stack_create(256 * 1024, 256 * 1024 * 1024, nullptr);
    if (context_ == nullptr || jit_stack_ == nullptr) throw std::bad_alloc();
    pcre2_jit_stack_assign(context_, nullptr, jit_stack_);
    return true;
  }

 private:
  pcre2_match_data* data_;
  pcre2_match_context* context_ = nullptr;
  pcre2_jit_stack* jit_stack_ = nullptr;
};

size_t char_length_at(std::string_view subject, size_t pos) {
  const size_t length = valid_sequence_length(subject.substr(pos));
  return length == 0 ? 1 : length;
}

}  // namespace

struct Regex::Compiled {
  pcre2_code* code = nullptr;
  std::string pattern;
  ~Compiled() { pcre2_code_free(code); }
};

Regex::Regex(std::string_view pattern, bool literal, std::string_view context)
    : compiled_(std::make_unique<Compiled>()) {
  // PCRE2_LITERAL refuses PCRE2_UCP, which only matters for character classes anyway.
  const uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  compiled_->pattern = std::string(pattern);
  compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                  options, &error_code, &error_offset, nullptr);
  if (compiled_->code == nullptr) {
    fail_input("{}: regex does not compile at offset {}: {}", context, error_offset,
               pcre2_message(error_code));
  }
  // Without JIT support pcre2_match interprets the pattern: slower, same results.
  pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE);
}

Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

void Regex::find_all(std::string_view subject, std::vector<Span>& matches) const {
  MatchState state;
  const auto* text = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t offset = 0;
  while (offset < subject.size()) {
    const int rc = pcre2_match(compiled_->code, text, subject.size(), offset, 0, state.data(),
                               state.context());
    if (rc == PCRE2_ERROR_NOMATCH) return;
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && state.grow_jit_stack()) continue;
    if (rc < 0) {
      fail(ErrorKind::kInternal, "regex /{}/ failed on a {}-byte text at offset {}: {}",
           compiled_->pattern, subject.size(), offset, pcre2_message(rc));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.data());
    const size_t begin = ovector[0];
    const size_t end = ovector[1];
    if (end > begin) {
      matches.push_back({begin, end});
      offset = end;
    } else {
      offset = begin + char_length_at(subject, begin);  // step over an empty match
    }
  }
}

PreTokenizer::PreTokenizer(std::vector<Regex> isolated_splits, ByteLevelOptions byte_level)
    : splits_(std::move(isolated_splits)), byte_level_(byte_level) {
  if (byte_level_.use_regex) {
    gpt2_regex_ = std::make_unique<Regex>(kGpt2SplitPattern, false, "ByteLevel pre-tokenizer");
  }
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& pieces,
                         std::string& storage) const {
  pieces.clear();
  if (text.empty()) return;
  pieces.push_back(text);
  for (const Regex& regex : splits_) apply_split(regex, pieces);
  if (byte_level_.add_prefix_space) add_prefix_spaces(pieces, storage);
  if (gpt2_regex_) apply_split(*gpt2_regex_, pieces);
}

// "Isolated" behaviour: each match is a pre-token and so is each non-empty gap between matches.
void PreTokenizer::apply_split(const Regex& regex, std::vector<std::string_view>& pieces) const {
  std::vector<std::string_view> result;
  result.reserve(pieces.size() * 2);
  std::vector<Regex::Span> matches;
  for (std::string_view piece : pieces) {
    matches.clear();
    regex.find_all(piece, matches);
    size_t covered = 0;
    for (const Regex::Span& match : matches) {
      if (match.begin > covered) result.push_back(piece.substr(covered, match.begin - covered));
      result.push_back(piece.substr(match.begin, match.end - match.begin));
      covered = match.end;
    }
    if (covered < piece.size()) result.push_back(piece.substr(covered));
  }
  pieces.swap(result);
}

void PreTokenizer::add_prefix_spaces(std::vector<std::string_view>& pieces,
                                     std::string& storage) const {
  size_t total = 0;
  for (std::string_view piece : pieces) total += piece.size() + 1;
  storage.clear();
  storage.reserve(total);  // no reallocation below, so the views stay valid
  for (std::string_view& piece : pieces) {
    const size_t start = storage.size();
    if (piece.front() != ' ') storage.push_back(' ');
    storage.append(piece);
    piece = std::string_view(storage).substr(start);
  }
}

}  // namespace quantlab::text
