// Jinja parser: token stream -> statement list. Follows Jinja2's grammar and operator precedence
// (filters and `is` tests bind tighter than arithmetic; `not x is y` means `not (x is y)`).
#pragma once

#include "text/jinja/ast.h"

#include <string>
#include <vector>

namespace quantlab::text::jinja {

// Nesting deeper than this (blocks, expressions, and chains of binary operators, which build
// left-deep trees) is rejected so hostile templates cannot overflow the stack while parsing,
// rendering or destroying the tree.
inline constexpr int kMaxParseDepth = 256;

// Throws quantlab::Error naming template_name, line and column on a syntax error.
StmtList parse_template(const std::vector<Token>& tokens, const std::string& template_name);

}  // namespace quantlab::text::jinja
