#include "text/tokenizer.h"
#include "text/utf8.h"

namespace quantlab::text {

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(&tokenizer), skip_special_(skip_special_tokens) {}

// A lead byte always starts a new sequence in the lossy decoder, so cutting just before an
// incomplete tail decodes the emitted part exactly as decode() of the whole stream would.
std::string StreamingDetokenizer::push(int32_t id) {
  if (skip_special_ && tokenizer_->is_special(id)) return {};
  pending_.append(tokenizer_->token_bytes(id));
  const size_t ready = pending_.size() - incomplete_tail_length(pending_);
  std::string text = utf8_lossy(std::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  return text;
}

std::string StreamingDetokenizer::finish() {
  std::string text = utf8_lossy(pending_);
  pending_.clear();
  return text;
}

}  // namespace quantlab::text
