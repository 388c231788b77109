// Jinja lexer: template source -> a flat token stream of text runs and tag contents.
// Whitespace control follows transformers' environment: trim_blocks and lstrip_blocks on, the `-`
// and `+` tag modifiers, newlines normalised to "\n" and one trailing newline dropped
// (keep_trailing_newline=False). Comments are removed here; `{% raw %}` bodies become text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace quantlab::text::jinja {

struct SourceLoc {
  int line = 1;
  int column = 1;
};

// Throws quantlab::Error(kInvalidInput) "<template>:<line>:<column>: <message>".
[[noreturn]] void fail_at(const std::string& template_name, SourceLoc loc, const std::string& message);

enum class TokenType {
  kText,        // literal template text (already whitespace-trimmed)
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,      // text holds the decoded value
  kInt,
  kFloat,
  kOperator,    // text holds the operator: "+", "//", "==", "(", ...
  kEnd,
};

struct Token {
  TokenType type;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0.0;
  SourceLoc loc;
};

std::vector<Token> tokenize(std::string_view source, const std::string& template_name);

}  // namespace quantlab::text::jinja
