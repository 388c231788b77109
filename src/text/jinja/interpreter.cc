#include "text/jinja/interpreter.h"

namespace quantlab::text::jinja {
namespace {

enum class Flow { kNormal, kBreak, kContinue };

struct Scope {
  std::vector<std::pair<std::string, Value>> vars;
  bool barrier = false;  // a macro body: lookups skip the caller's scopes and go to the template's
};

class Interpreter {
 public:
  Interpreter(const std::string& name, const ValueDict& variables, const RenderLimits& limits)
      : name_(name), limits_(limits) {
    Scope globals;
    for (auto& item : builtin_globals().items) globals.vars.push_back(std::move(item));
    for (const auto& item : variables.items) set_in(globals, item.first, item.second);
    scopes_.push_back(std::move(globals));
    scopes_.emplace_back();  // template top level
  }

  std::string render(const StmtList& program) {
    std::string out;
    exec_block(program, out);
    return out;
  }

 private:
  struct DepthGuard {
    Interpreter& in;
    DepthGuard(Interpreter& interpreter, SourceLoc loc) : in(interpreter) {
      if (++in.depth_ > in.limits_.max_depth) fail_at(in.name_, loc, "template evaluation nests too deeply");
    }
    ~DepthGuard() { --in.depth_; }
  };
  struct ScopeGuard {
    Interpreter& in;
    ScopeGuard(Interpreter& interpreter, bool barrier) : in(interpreter) {
      in.scopes_.emplace_back();
      in.scopes_.back().barrier = barrier;
    }
    ~ScopeGuard() { in.scopes_.pop_back(); }
  };

  static void set_in(Scope& scope, const std::string& name, Value value) {
    for (auto& [k, v] : scope.vars) {
      if (k == name) {
        v = std::move(value);
        return;
      }
    }
    scope.vars.emplace_back(name, std::move(value));
  }

  static const Value* find_in(const Scope& scope, const std::string& name) {
    for (const auto& [k, v] : scope.vars) {
      if (k == name) return &v;
    }
    return nullptr;
  }

  Value lookup(const std::string& name) const {
    for (size_t i = scopes_.size(); i-- > 0;) {
      if (const Value* v = find_in(scopes_[i], name)) return *v;
      if (scopes_[i].barrier && i > 2) i = 2;  // continue with the template top level and globals
    }
    return Value::undefined(fmt::format("'{}' is undefined", name));
  }

  void assign(const std::string& name, Value value) { set_in(scopes_.back(), name, std::move(value)); }

  void step(SourceLoc loc) {
    if (++steps_ > limits_.max_steps) fail_at(name_, loc, fmt::format("template exceeded {} steps", limits_.max_steps));
  }

  void emit(std::string& out, const std::string& text, SourceLoc loc) {
    out += text;
    if (out.size() > limits_.max_output_bytes) {
      fail_at(name_, loc, fmt::format("template output exceeds {} bytes", limits_.max_output_bytes));
    }
  }

  // ---- statements ----

  Flow exec_block(const StmtList& body, std::string& out) {
    for (const auto& s : body) {
      Flow flow = exec(*s, out);
      if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
  }

  Flow exec(const Stmt& s, std::string& out) {
    DepthGuard guard(*this, s.loc);
    step(s.loc);
    return located(s.loc, [&] { return exec_inner(s, out); });
  }

  Flow exec_inner(const Stmt& s, std::string& out) {
    switch (s.kind) {
      case StmtKind::kText: emit(out, s.text, s.loc); return Flow::kNormal;
      case StmtKind::kOutput: emit(out, to_output(eval(*s.expr)), s.loc); return Flow::kNormal;
      case StmtKind::kIf: return exec_block(truthy(eval(*s.expr)) ? s.body : s.else_body, out);
      case StmtKind::kFor: return exec_for(s, out);
      case StmtKind::kSet: exec_set(s); return Flow::kNormal;
      case StmtKind::kSetBlock: {
        std::string captured;
        {
          ScopeGuard scope(*this, false);  // the block body is its own scope, as in Jinja
          exec_block(s.body, captured);
        }
        assign(s.targets[0], Value(std::move(captured)));
        return Flow::kNormal;
      }
      case StmtKind::kMacro: define_macro(s); return Flow::kNormal;
      case StmtKind::kBreak: return Flow::kBreak;
      case StmtKind::kContinue: return Flow::kContinue;
      case StmtKind::kBlock: return exec_block(s.body, out);
    }
    return Flow::kNormal;
  }

  template <typename Fn>
  auto located(SourceLoc loc, Fn&& fn) -> decltype(fn()) {
    try {
      return fn();
    } catch (const RuntimeError& e) {
      fail_at(name_, loc, e.what());
    }
  }

  void bind_targets(const std::vector<std::string>& targets, const Value& value, SourceLoc loc) {
    if (targets.size() == 1) {
      assign(targets[0], value);
      return;
    }
    ValueList parts = located(loc, [&] { return iterate(value); });
    if (parts.size() != targets.size()) {
      fail_at(name_, loc, fmt::format("cannot unpack {} values into {} names", parts.size(), targets.size()));
    }
    for (size_t i = 0; i < targets.size(); ++i) assign(targets[i], parts[i]);
  }

  Value loop_object(const ValueList& items, size_t i) {
    const auto n = static_cast<int64_t>(items.size());
    const auto index = static_cast<int64_t>(i);
    ValueDict loop;
    loop.items.reserve(12);
    auto add = [&](const char* key, Value v) { loop.items.emplace_back(key, std::move(v)); };
    add("index", Value(index + 1));
    add("index0", Value(index));
    add("revindex", Value(n - index));
    add("revindex0", Value(n - index - 1));
    add("first", Value(i == 0));
    add("last", Value(i + 1 == items.size()));
    add("length", Value(n));
    add("depth", Value(1));
    add("depth0", Value(0));
    add("previtem", i > 0 ? items[i - 1] : Value::undefined("there is no previous item"));
    add("nextitem", i + 1 < items.size() ? items[i + 1] : Value::undefined("there is no next item"));
    add("cycle", cycle_function(i));
    return Value(std::move(loop));
  }

  static Value cycle_function(size_t i) {
    return Value::function([i](const CallArgs& args) {
      if (args.positional.empty()) runtime_fail("loop.cycle() needs at least one argument");
      return args.positional[i % args.positional.size()];
    });
  }

  Flow exec_for(const Stmt& s, std::string& out) {
    Value iterable = eval(*s.expr);
    // Lists are iterated in place (templates cannot mutate them); other iterables are materialised.
    ValueList storage;
    const ValueList* all = &storage;
    if (iterable.is_list()) {
      all = &iterable.as_list();
    } else {
      storage = located(s.expr->loc, [&] { return iterate(iterable); });
    }
    if (s.filter) {
      ValueList kept;
      for (const auto& item : *all) {
        step(s.loc);
        ScopeGuard scope(*this, false);
        bind_targets(s.targets, item, s.loc);
        if (truthy(eval(*s.filter))) kept.push_back(item);
      }
      storage = std::move(kept);
      all = &storage;
    }
    const ValueList& items = *all;
    // Jinja runs the else block unless some iteration reached the end of its body: an iteration
    // left by break or continue does not count (its "iterated" flag is set at the body's end).
    bool body_completed = false;
    for (size_t i = 0; i < items.size(); ++i) {
      step(s.loc);
      ScopeGuard scope(*this, false);
      bind_targets(s.targets, items[i], s.loc);
      assign("loop", loop_object(items, i));
      Flow flow = exec_block(s.body, out);
      if (flow == Flow::kNormal) body_completed = true;
      if (flow == Flow::kBreak) break;
    }
    if (!body_completed && !s.else_body.empty()) {
      ScopeGuard scope(*this, false);
      exec_block(s.else_body, out);
    }
    return Flow::kNormal;
  }

  void exec_set(const Stmt& s) {
    Value value = eval(*s.expr);
    if (s.attr.empty()) {
      bind_targets(s.targets, value, s.loc);
      return;
    }
    Value target = lookup(s.targets[0]);
    if (!target.is_dict() || !target.as_dict().is_namespace) {
      fail_at(name_, s.loc, fmt::format("cannot assign attribute '{}' on '{}': not a namespace() object", s.attr, s.targets[0]));
    }
    if (value.holds_namespace()) {
      fail_at(name_, s.loc, fmt::format("cannot store a namespace() object inside namespace '{}'", s.targets[0]));
    }
    target.mutable_dict().set(s.attr, std::move(value));
  }

  void define_macro(const Stmt& s) {
    const Stmt* macro = &s;
    assign(s.text, Value::function([this, macro](const CallArgs& args) { return call_macro(*macro, args); }));
  }

  Value call_macro(const Stmt& macro, const CallArgs& args) {
    if (args.positional.size() > macro.params.size()) {
      runtime_fail("macro '{}' takes {} arguments, {} given", macro.text, macro.params.size(), args.positional.size());
    }
    for (const auto& entry : args.keyword) {
      const auto& key = entry.first;  // a named variable: clang 14 cannot capture structured bindings
      bool known = std::any_of(macro.params.begin(), macro.params.end(), [&](const MacroParam& p) { return p.name == key; });
      if (!known) runtime_fail("macro '{}' has no parameter '{}'", macro.text, key);
    }
    if (macro_depth_ >= limits_.max_macro_depth) runtime_fail("macro calls nest deeper than {}", limits_.max_macro_depth);
    ++macro_depth_;
    std::string out;
    {
      ScopeGuard scope(*this, true);
      for (size_t i = 0; i < macro.params.size(); ++i) {
        const MacroParam& p = macro.params[i];
        const Value* given = args.get(i, p.name);
        Value fallback = p.default_value ? eval(*p.default_value) : Value::undefined(fmt::format("'{}' is undefined", p.name));
        assign(p.name, given ? *given : fallback);
      }
      exec_block(macro.body, out);
    }
    --macro_depth_;
    return Value(std::move(out));
  }

  // ---- expressions ----

  Value eval(const Expr& e) {
    DepthGuard guard(*this, e.loc);
    return located(e.loc, [&] { return eval_inner(e); });
  }

  CallArgs eval_args(const Expr& e, size_t first_positional) {
    CallArgs args;
    for (size_t i = first_positional; i < e.args.size(); ++i) args.positional.push_back(eval(*e.args[i]));
    for (const auto& [key, value] : e.keyword) args.keyword.emplace_back(key, eval(*value));
    return args;
  }

  bool compare(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equals(a, b);
    if (op == "!=") return !equals(a, b);
    if (op == "in") return contains(b, a);
    if (op == "not in") return !contains(b, a);
    if (a.is_undefined()) fail_undefined(a);
    if (b.is_undefined()) fail_undefined(b);
    auto lt = (op == "<" || op == ">=") ? less_than(a, b) : less_than(b, a);
    if (!lt) runtime_fail("'{}' not supported between '{}' and '{}'", op, type_name(a), type_name(b));
    return (op == "<" || op == ">") ? *lt : !*lt;
  }

  Value eval_inner(const Expr& e) {
    switch (e.kind) {
      case ExprKind::kLiteral: return e.literal;
      case ExprKind::kName: return lookup(e.name);
      case ExprKind::kList: {
        ValueList items;
        for (const auto& item : e.args) items.push_back(eval(*item));
        return e.name == "tuple" ? Value::tuple(std::move(items)) : Value(std::move(items));
      }
      case ExprKind::kDict: {
        ValueDict dict;
        for (size_t i = 0; i < e.args.size(); ++i) {
          Value key = eval(*e.args[i]);
          if (!key.is_string()) runtime_fail("dict keys must be strings, not {}", type_name(key));
          dict.set(key.as_string(), eval(*e.keyword[i].second));
        }
        return Value(std::move(dict));
      }
      case ExprKind::kAttribute: return get_attribute(eval(*e.args[0]), e.name);
      case ExprKind::kSubscript: {
        Value target = eval(*e.args[0]);
        return get_item(target, eval(*e.args[1]));
      }
      case ExprKind::kSlice: {
        Value target = eval(*e.args[0]);
        auto part = [&](size_t i) { return e.args[i] ? eval(*e.args[i]) : Value::none(); };
        Value start = part(1), stop = part(2), step_value = part(3);
        return get_slice(target, start, stop, step_value);
      }
      case ExprKind::kCall: {
        Value callee = eval(*e.args[0]);
        if (callee.is_undefined()) fail_undefined(callee);
        if (!callee.is_function()) runtime_fail("'{}' object is not callable", type_name(callee));
        CallArgs args = eval_args(e, 1);
        return callee.as_function()(args);
      }
      case ExprKind::kFilter: {
        Value input = eval(*e.args[0]);
        CallArgs args = eval_args(e, 1);
        return find_filter(e.name)(input, args);
      }
      case ExprKind::kTest: {
        Value input = eval(*e.args[0]);
        CallArgs args = eval_args(e, 1);
        return Value(find_test(e.name)(input, args) != e.negated);
      }
      case ExprKind::kNot: return Value(!truthy(eval(*e.args[0])));
      case ExprKind::kNegate:
      case ExprKind::kPlus: return eval_sign(e);
      case ExprKind::kBinary: {
        Value left = eval(*e.args[0]);
        return binary_op(e.name, left, eval(*e.args[1]));
      }
      case ExprKind::kAnd: {
        Value left = eval(*e.args[0]);
        return truthy(left) ? eval(*e.args[1]) : left;
      }
      case ExprKind::kOr: {
        Value left = eval(*e.args[0]);
        return truthy(left) ? left : eval(*e.args[1]);
      }
      case ExprKind::kCompare: {
        Value left = eval(*e.args[0]);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.args[i + 1]);
          if (!compare(e.ops[i], left, right)) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case ExprKind::kConditional: {
        if (truthy(eval(*e.args[0]))) return eval(*e.args[1]);
        return e.args[2] ? eval(*e.args[2]) : Value::undefined("the inline if had no else branch");
      }
    }
    return Value();
  }

  Value eval_sign(const Expr& e) {
    Value v = eval(*e.args[0]);
    if (v.is_undefined()) fail_undefined(v);
    if (!v.is_number()) runtime_fail("bad operand type for unary {}: '{}'", e.kind == ExprKind::kNegate ? "-" : "+", type_name(v));
    if (e.kind == ExprKind::kPlus) return v.is_bool() ? Value(v.to_int()) : v;
    if (v.is_float()) return Value(-v.as_float());
    if (v.to_int() == INT64_MIN) runtime_fail("integer overflow");
    return Value(-v.to_int());
  }

  const std::string& name_;
  RenderLimits limits_;
  std::vector<Scope> scopes_;
  uint64_t steps_ = 0;
  int depth_ = 0;
  int macro_depth_ = 0;
};

}  // namespace

std::string render_program(const StmtList& program, const std::string& template_name, const ValueDict& variables,
                           const RenderLimits& limits) {
  return Interpreter(template_name, variables, limits).render(program);
}

}  // namespace quantlab::text::jinja
