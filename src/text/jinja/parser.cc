#include "text/jinja/parser.h"

#include "text/jinja/builtins.h"

#include <algorithm>
#include <initializer_list>

namespace quantlab::text::jinja {
namespace {

ExprPtr make_expr(ExprKind kind, SourceLoc loc) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->loc = loc;
  return e;
}

ExprPtr make_binary(ExprKind kind, SourceLoc loc, ExprPtr left, ExprPtr right, std::string op = "") {
  auto e = make_expr(kind, loc);
  e->name = std::move(op);
  e->args.push_back(std::move(left));
  e->args.push_back(std::move(right));
  return e;
}

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, const std::string& name) : toks_(tokens), name_(name) {}

  StmtList parse_all() {
    std::string end;
    StmtList body = parse_body({}, end);
    return body;
  }

 private:
  // Limits recursion depth across statements and expressions.
  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > kMaxParseDepth) p.error(p.peek().loc, "template nests too deeply");
    }
    ~DepthGuard() { --p.depth_; }
  };
  // A chain `a + b + c ...` builds a left-deep tree without recursing; count each link as depth.
  struct ChainGuard {
    Parser& p;
    int links = 0;
    explicit ChainGuard(Parser& parser) : p(parser) {}
    void grow() {
      ++links;
      if (++p.depth_ > kMaxParseDepth) p.error(p.peek().loc, "expression is too long or nests too deeply");
    }
    ~ChainGuard() { p.depth_ -= links; }
  };

  const Token& peek(size_t ahead = 0) const { return toks_[std::min(pos_ + ahead, toks_.size() - 1)]; }
  const Token& next() {
    const Token& t = peek();
    if (pos_ < toks_.size() - 1) ++pos_;
    return t;
  }
  [[noreturn]] void error(SourceLoc loc, const std::string& message) const { fail_at(name_, loc, message); }

  bool at_op(const char* op, size_t ahead = 0) const {
    return peek(ahead).type == TokenType::kOperator && peek(ahead).text == op;
  }
  bool at_name(const char* word, size_t ahead = 0) const {
    return peek(ahead).type == TokenType::kName && peek(ahead).text == word;
  }
  bool accept_op(const char* op) {
    if (!at_op(op)) return false;
    next();
    return true;
  }
  bool accept_name(const char* word) {
    if (!at_name(word)) return false;
    next();
    return true;
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokenType::kEnd: return "end of template";
      case TokenType::kBlockEnd: return "end of block tag '%}'";
      case TokenType::kVarEnd: return "end of expression '}}'";
      case TokenType::kText: return "template text";
      case TokenType::kString: return "string literal";
      default: return "'" + t.text + "'";
    }
  }
  void expect_op(const char* op) {
    if (!accept_op(op)) error(peek().loc, fmt::format("expected '{}', found {}", op, describe(peek())));
  }
  std::string expect_name(const char* what) {
    if (peek().type != TokenType::kName) error(peek().loc, fmt::format("expected {}, found {}", what, describe(peek())));
    return next().text;
  }
  void expect(TokenType type, const char* what) {
    if (peek().type != type) error(peek().loc, fmt::format("expected {}, found {}", what, describe(peek())));
    next();
  }

  // ---- statements ----

  // Parses until a block tag named in `ends` (consumed, name stored in `found`) or end of input.
  // The last entry of `ends` is the closing tag named in the "missing" error; `opened` is where the
  // block began.
  StmtList parse_body(std::initializer_list<const char*> ends, std::string& found, SourceLoc opened = {}) {
    DepthGuard guard(*this);
    StmtList body;
    if (ends.size() > 0) open_.push_back({*(ends.end() - 1), opened});
    while (true) {
      const Token& t = peek();
      if (t.type == TokenType::kEnd) {
        if (ends.size() == 0) return body;
        error(opened, fmt::format("missing '{{% {} %}}' to close this block", *(ends.end() - 1)));
      }
      if (t.type == TokenType::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kText;
        s->loc = t.loc;
        s->text = next().text;
        body.push_back(std::move(s));
      } else if (t.type == TokenType::kVarBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kOutput;
        s->loc = next().loc;
        s->expr = parse_expression();
        expect(TokenType::kVarEnd, "'}}'");
        body.push_back(std::move(s));
      } else if (t.type == TokenType::kBlockBegin) {
        const Token& word = peek(1);
        if (word.type == TokenType::kName &&
            std::any_of(ends.begin(), ends.end(), [&](const char* e) { return word.text == e; })) {
          next();
          found = next().text;
          if (ends.size() > 0) open_.pop_back();
          return body;
        }
        body.push_back(parse_statement());
      } else {
        error(t.loc, fmt::format("unexpected {}", describe(t)));
      }
    }
  }

  StmtPtr parse_statement() {
    SourceLoc loc = next().loc;  // '{%'
    const Token& word = peek();
    if (word.type != TokenType::kName) error(word.loc, fmt::format("expected a tag name, found {}", describe(word)));
    std::string tag = next().text;
    auto s = std::make_unique<Stmt>();
    s->loc = loc;
    if (tag == "for") {
      parse_for(*s);
    } else if (tag == "if") {
      parse_if(*s);
    } else if (tag == "set") {
      parse_set(*s);
    } else if (tag == "macro") {
      parse_macro(*s);
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) error(loc, fmt::format("'{}' outside of a for loop", tag));
      s->kind = tag == "break" ? StmtKind::kBreak : StmtKind::kContinue;
      expect(TokenType::kBlockEnd, "'%}'");
    } else if (tag == "generation") {
      s->kind = StmtKind::kBlock;
      expect(TokenType::kBlockEnd, "'%}'");
      std::string end;
      s->body = parse_body({"endgeneration"}, end, loc);
      expect(TokenType::kBlockEnd, "'%}'");
    } else if (tag.rfind("end", 0) == 0 || tag == "elif" || tag == "else") {
      std::string expected = open_.empty() ? std::string("no block is open")
                                           : fmt::format("expected '{{% {} %}}' for the block at line {}",
                                                         open_.back().first, open_.back().second.line);
      error(loc, fmt::format("unexpected '{{% {} %}}': {}", tag, expected));
    } else {
      error(loc, fmt::format("unknown or unsupported tag '{}'", tag));
    }
    return s;
  }

  void parse_for(Stmt& s) {
    s.kind = StmtKind::kFor;
    do {
      s.targets.push_back(expect_name("a loop variable"));
    } while (accept_op(","));
    if (!accept_name("in")) error(peek().loc, fmt::format("expected 'in', found {}", describe(peek())));
    s.expr = parse_expression(/*allow_conditional=*/false);
    if (accept_name("if")) s.filter = parse_expression();
    if (at_name("recursive")) error(peek().loc, "recursive for loops are not supported");
    expect(TokenType::kBlockEnd, "'%}'");
    std::string end;
    ++loop_depth_;
    s.body = parse_body({"else", "endfor"}, end, s.loc);
    --loop_depth_;
    expect(TokenType::kBlockEnd, "'%}'");
    if (end == "else") {
      s.else_body = parse_body({"endfor"}, end, s.loc);
      expect(TokenType::kBlockEnd, "'%}'");
    }
  }

  void parse_if(Stmt& s) {
    s.kind = StmtKind::kIf;
    s.expr = parse_expression();
    expect(TokenType::kBlockEnd, "'%}'");
    std::string end;
    s.body = parse_body({"elif", "else", "endif"}, end, s.loc);
    if (end == "elif") {
      auto inner = std::make_unique<Stmt>();
      inner->loc = peek().loc;
      parse_if(*inner);  // consumes through the shared endif
      s.else_body.push_back(std::move(inner));
      return;
    }
    expect(TokenType::kBlockEnd, "'%}'");
    if (end == "else") {
      s.else_body = parse_body({"endif"}, end, s.loc);
      expect(TokenType::kBlockEnd, "'%}'");
    }
  }

  void parse_set(Stmt& s) {
    s.kind = StmtKind::kSet;
    s.targets.push_back(expect_name("a variable name"));
    if (accept_op(".")) {
      s.attr = expect_name("an attribute name");
    } else {
      while (accept_op(",")) s.targets.push_back(expect_name("a variable name"));
    }
    if (peek().type == TokenType::kBlockEnd && s.targets.size() == 1 && s.attr.empty()) {
      next();
      s.kind = StmtKind::kSetBlock;
      std::string end;
      s.body = parse_body({"endset"}, end, s.loc);
      expect(TokenType::kBlockEnd, "'%}'");
      return;
    }
    expect_op("=");
    s.expr = parse_tuple_or_expression();
    expect(TokenType::kBlockEnd, "'%}'");
  }

  void parse_macro(Stmt& s) {
    s.kind = StmtKind::kMacro;
    s.text = expect_name("a macro name");
    expect_op("(");
    while (!accept_op(")")) {
      if (!s.params.empty()) expect_op(",");
      if (accept_op(")")) break;  // trailing comma
      MacroParam param{expect_name("a parameter name"), nullptr};
      if (accept_op("=")) param.default_value = parse_expression();
      s.params.push_back(std::move(param));
    }
    expect(TokenType::kBlockEnd, "'%}'");
    int saved_loops = loop_depth_;
    loop_depth_ = 0;  // break/continue cannot cross a macro boundary
    std::string end;
    s.body = parse_body({"endmacro"}, end, s.loc);
    loop_depth_ = saved_loops;
    expect(TokenType::kBlockEnd, "'%}'");
  }

  // ---- expressions ----

  ExprPtr parse_tuple_or_expression() {
    SourceLoc loc = peek().loc;
    ExprPtr first = parse_expression();
    if (!at_op(",")) return first;
    auto list = make_expr(ExprKind::kList, loc);
    list->name = "tuple";
    list->args.push_back(std::move(first));
    while (accept_op(",")) {
      if (peek().type == TokenType::kBlockEnd || at_op(")")) break;
      list->args.push_back(parse_expression());
    }
    return list;
  }

  ExprPtr parse_expression(bool allow_conditional = true) {
    DepthGuard guard(*this);
    ExprPtr value = parse_or();
    if (!allow_conditional || !at_name("if")) return value;
    auto cond = make_expr(ExprKind::kConditional, next().loc);
    cond->args.push_back(parse_or());
    cond->args.push_back(std::move(value));
    cond->args.push_back(accept_name("else") ? parse_expression() : nullptr);
    return cond;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    ChainGuard chain(*this);
    while (at_name("or")) {
      SourceLoc loc = next().loc;
      chain.grow();
      left = make_binary(ExprKind::kOr, loc, std::move(left), parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    ChainGuard chain(*this);
    while (at_name("and")) {
      SourceLoc loc = next().loc;
      chain.grow();
      left = make_binary(ExprKind::kAnd, loc, std::move(left), parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (!at_name("not")) return parse_compare();
    DepthGuard guard(*this);
    auto e = make_expr(ExprKind::kNot, next().loc);
    e->args.push_back(parse_not());
    return e;
  }

  ExprPtr parse_compare() {
    ExprPtr first = parse_math1();
    ExprPtr chain;
    while (true) {
      std::string op;
      SourceLoc loc = peek().loc;
      if (peek().type == TokenType::kOperator &&
          (peek().text == "==" || peek().text == "!=" || peek().text == "<" || peek().text == "<=" ||
           peek().text == ">" || peek().text == ">=")) {
        op = next().text;
      } else if (at_name("in")) {
        next();
        op = "in";
      } else if (at_name("not") && at_name("in", 1)) {
        next();
        next();
        op = "not in";
      } else {
        break;
      }
      if (chain && chain->ops.size() >= static_cast<size_t>(kMaxParseDepth)) error(loc, "comparison chain is too long");
      if (!chain) {
        chain = make_expr(ExprKind::kCompare, loc);
        chain->args.push_back(std::move(first));
      }
      chain->ops.push_back(op);
      chain->args.push_back(parse_math1());
    }
    return chain ? std::move(chain) : std::move(first);
  }

  template <typename Next>
  ExprPtr parse_binary_level(std::initializer_list<const char*> ops, Next next_level) {
    ExprPtr left = (this->*next_level)();
    ChainGuard chain(*this);
    while (peek().type == TokenType::kOperator &&
           std::any_of(ops.begin(), ops.end(), [&](const char* op) { return peek().text == op; })) {
      const Token& op = next();
      chain.grow();
      left = make_binary(ExprKind::kBinary, op.loc, std::move(left), (this->*next_level)(), op.text);
    }
    return left;
  }
  ExprPtr parse_math1() { return parse_binary_level({"+", "-"}, &Parser::parse_concat); }
  ExprPtr parse_concat() { return parse_binary_level({"~"}, &Parser::parse_math2); }
  ExprPtr parse_math2() { return parse_binary_level({"*", "/", "//", "%"}, &Parser::parse_pow); }
  ExprPtr parse_pow() { return parse_binary_level({"**"}, &Parser::parse_unary_filtered); }
  ExprPtr parse_unary_filtered() { return parse_unary(true); }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr node;
    if (at_op("-") || at_op("+")) {
      const Token& op = next();
      node = make_expr(op.text == "-" ? ExprKind::kNegate : ExprKind::kPlus, op.loc);
      node->args.push_back(parse_unary(false));
    } else {
      node = parse_postfix(parse_primary());
    }
    return with_filter ? parse_filter_chain(std::move(node)) : std::move(node);
  }

  ExprPtr parse_primary() {
    const Token& t = peek();
    switch (t.type) {
      case TokenType::kName: {
        next();
        auto e = make_expr(ExprKind::kLiteral, t.loc);
        if (t.text == "true" || t.text == "True") {
          e->literal = Value(true);
        } else if (t.text == "false" || t.text == "False") {
          e->literal = Value(false);
        } else if (t.text == "none" || t.text == "None") {
          e->literal = Value::none();
        } else {
          e->kind = ExprKind::kName;
          e->name = t.text;
        }
        return e;
      }
      case TokenType::kString: {
        auto e = make_expr(ExprKind::kLiteral, t.loc);
        std::string s;
        while (peek().type == TokenType::kString) s += next().text;  // adjacent literals concatenate
        e->literal = Value(std::move(s));
        return e;
      }
      case TokenType::kInt:
      case TokenType::kFloat: {
        next();
        auto e = make_expr(ExprKind::kLiteral, t.loc);
        e->literal = t.type == TokenType::kInt ? Value(t.int_value) : Value(t.float_value);
        return e;
      }
      case TokenType::kOperator:
        if (t.text == "(") return parse_parenthesized();
        if (t.text == "[") return parse_list();
        if (t.text == "{") return parse_dict();
        [[fallthrough]];
      default: error(t.loc, fmt::format("unexpected {} in expression", describe(t)));
    }
  }

  ExprPtr parse_parenthesized() {
    SourceLoc loc = next().loc;
    auto tuple = make_expr(ExprKind::kList, loc);
    tuple->name = "tuple";
    if (accept_op(")")) return tuple;  // () is an empty tuple
    ExprPtr first = parse_expression();
    if (accept_op(")")) return first;
    tuple->args.push_back(std::move(first));
    while (accept_op(",")) {
      if (at_op(")")) break;
      tuple->args.push_back(parse_expression());
    }
    expect_op(")");
    return tuple;
  }

  ExprPtr parse_list() {
    auto list = make_expr(ExprKind::kList, next().loc);
    while (!accept_op("]")) {
      if (!list->args.empty()) expect_op(",");
      if (accept_op("]")) break;
      list->args.push_back(parse_expression());
    }
    return list;
  }

  ExprPtr parse_dict() {
    auto dict = make_expr(ExprKind::kDict, next().loc);
    while (!accept_op("}")) {
      if (!dict->args.empty()) expect_op(",");
      if (accept_op("}")) break;
      dict->args.push_back(parse_expression());
      expect_op(":");
      dict->keyword.emplace_back("", parse_expression());
    }
    return dict;
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (at_op(".")) {
        SourceLoc loc = next().loc;
        if (peek().type == TokenType::kInt) {  // foo.0 is foo[0]
          auto index = make_expr(ExprKind::kLiteral, peek().loc);
          index->literal = Value(next().int_value);
          node = make_binary(ExprKind::kSubscript, loc, std::move(node), std::move(index));
          continue;
        }
        auto attr = make_expr(ExprKind::kAttribute, loc);
        attr->name = expect_name("an attribute name");
        attr->args.push_back(std::move(node));
        node = std::move(attr);
      } else if (at_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (at_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr target) {
    SourceLoc loc = next().loc;
    ExprPtr start = at_op(":") ? nullptr : parse_expression();
    if (!accept_op(":")) {
      expect_op("]");
      return make_binary(ExprKind::kSubscript, loc, std::move(target), std::move(start));
    }
    auto slice = make_expr(ExprKind::kSlice, loc);
    slice->args.push_back(std::move(target));
    slice->args.push_back(std::move(start));
    slice->args.push_back(at_op(":") || at_op("]") ? nullptr : parse_expression());
    ExprPtr step;
    if (accept_op(":") && !at_op("]")) step = parse_expression();
    slice->args.push_back(std::move(step));
    expect_op("]");
    return slice;
  }

  // Parses `(args, name=value)` into e->args (after any already present) and e->keyword.
  void parse_call_args(Expr& e) {
    expect_op("(");
    bool first = true;
    while (!accept_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (accept_op(")")) break;
      if (peek().type == TokenType::kName && at_op("=", 1)) {
        std::string key = next().text;
        next();
        e.keyword.emplace_back(std::move(key), parse_expression());
      } else {
        if (!e.keyword.empty()) error(peek().loc, "positional argument after keyword argument");
        e.args.push_back(parse_expression());
      }
    }
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto call = make_expr(ExprKind::kCall, peek().loc);
    call->args.push_back(std::move(callee));
    parse_call_args(*call);
    return call;
  }

  ExprPtr parse_filter_chain(ExprPtr node) {
    while (true) {
      if (at_op("|")) {
        auto filter = make_expr(ExprKind::kFilter, next().loc);
        filter->name = expect_name("a filter name");
        if (find_filter(filter->name) == nullptr) error(filter->loc, fmt::format("no filter named '{}'", filter->name));
        filter->args.push_back(std::move(node));
        if (at_op("(")) parse_call_args(*filter);
        node = std::move(filter);
      } else if (at_name("is")) {
        node = parse_test(std::move(node));
      } else if (at_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_test(ExprPtr node) {
    auto test = make_expr(ExprKind::kTest, next().loc);
    test->negated = accept_name("not");
    test->name = expect_name("a test name");
    if (find_test(test->name) == nullptr) error(test->loc, fmt::format("no test named '{}'", test->name));
    test->args.push_back(std::move(node));
    if (at_op("(")) {
      parse_call_args(*test);
      return test;
    }
    const Token& t = peek();
    bool starts_primary = t.type == TokenType::kName || t.type == TokenType::kString || t.type == TokenType::kInt ||
                          t.type == TokenType::kFloat || at_op("[") || at_op("{");
    // As in Jinja, only else/or/and end a test here: `x is defined if c else d` is a syntax error.
    if (starts_primary && !at_name("else") && !at_name("or") && !at_name("and")) {
      if (at_name("is")) error(t.loc, "tests cannot be chained with 'is'");
      test->args.push_back(parse_postfix(parse_primary()));  // `x is divisibleby 3`
    }
    return test;
  }

  const std::vector<Token>& toks_;
  const std::string& name_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  std::vector<std::pair<const char*, SourceLoc>> open_;  // closing tag and start of each open block
};

}  // namespace

StmtList parse_template(const std::vector<Token>& tokens, const std::string& template_name) {
  return Parser(tokens, template_name).parse_all();
}

}  // namespace quantlab::text::jinja
