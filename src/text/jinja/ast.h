// Syntax tree of a parsed Jinja template. One generic node type per category keeps the tree small:
// `kind` says which fields are used (documented per kind below).
#pragma once

#include "text/jinja/lexer.h"
#include "text/jinja/value.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace quantlab::text::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;
using KeywordArgs = std::vector<std::pair<std::string, ExprPtr>>;

enum class ExprKind {
  kLiteral,      // literal
  kName,         // name
  kList,         // args = items; name == "tuple" for tuple literals
  kDict,         // keyword = key/value pairs with computed keys in args (args[i] is the key of keyword[i])
  kAttribute,    // args[0].name
  kSubscript,    // args[0][args[1]]
  kSlice,        // args[0][args[1]:args[2]:args[3]] (null entries = omitted)
  kCall,         // args[0](args[1..], keyword)
  kFilter,       // args[0] | name(args[1..], keyword)
  kTest,         // args[0] is [not] name(args[1..]); negated
  kNot,          // not args[0]
  kNegate,       // -args[0]
  kPlus,         // +args[0]
  kBinary,       // args[0] <name> args[1] for + - * / // % ** ~
  kAnd,          // args[0] and args[1]
  kOr,           // args[0] or args[1]
  kCompare,      // args[0] ops[0] args[1] ops[1] args[2] ... (chained like Python)
  kConditional,  // args[1] if args[0] else args[2] (args[2] may be null)
};

struct Expr {
  ExprKind kind;
  SourceLoc loc;
  Value literal;
  std::string name;
  std::vector<ExprPtr> args;
  KeywordArgs keyword;
  std::vector<std::string> ops;
  bool negated = false;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using StmtList = std::vector<StmtPtr>;

enum class StmtKind {
  kText,      // text
  kOutput,    // {{ expr }}
  kIf,        // if expr: body else else_body (elif = an If inside else_body)
  kFor,       // for targets in expr [if filter]: body else else_body
  kSet,       // set targets = expr, or set targets[0].attr = expr
  kSetBlock,  // set targets[0] %}body{% endset
  kMacro,     // macro name(params) body
  kBreak,
  kContinue,
  kBlock,     // body rendered in place ({% generation %} from transformers)
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // null when required
};

struct Stmt {
  StmtKind kind;
  SourceLoc loc;
  std::string text;
  std::vector<std::string> targets;
  std::string attr;
  ExprPtr expr;
  ExprPtr filter;
  StmtList body;
  StmtList else_body;
  std::vector<MacroParam> params;
};

}  // namespace quantlab::text::jinja
