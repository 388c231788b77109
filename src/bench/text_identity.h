// Which benched models share a tokenizer and a chat template (issue 20): a bench may compare
// families (Qwen3-30B-A3B against Qwen2.5-3B, the "smaller base"), whose suites then tokenize and
// render differently, so accuracies compare but logits and token counts do not.
#pragma once

#include <string>

#include "eval/report_schema.h"

namespace quantlab::bench {

struct TextIdentity {
  std::string tokenizer_digest;      // of tokenizer.json's bytes; "" without one
  std::string chat_template_digest;  // of chat_template.jinja, else tokenizer_config.json's chat_template
};

// FNV-1a 64 as 16 hex digits: an identity, not a security hash. Never throws: an unreadable file
// gives "".
TextIdentity text_identity(const std::string& model_dir);

// Fills every measured model's digests.
void add_text_identities(eval::BenchResults& results);

}  // namespace quantlab::bench
