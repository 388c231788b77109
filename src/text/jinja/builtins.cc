// Operators, attribute/item access, slicing and the global functions of the Jinja interpreter.
// String and dict methods live in methods.cc, filters and tests in filters.cc, the limits, error
// helpers and iterate() they all share in support.cc.
#include "text/jinja/builtins.h"

#include "text/jinja/methods.h"

#include <cmath>
#include <ctime>

namespace quantlab::text::jinja {

namespace {

std::string object_name(const Value& v) { return fmt::format("'{} object'", type_name(v)); }

// Python slice bounds for a sequence of `length` items.
std::vector<size_t> slice_indices(size_t length, const Value& start_v, const Value& stop_v, const Value& step_v) {
  auto as_index = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_none() || v.is_undefined()) return std::nullopt;
    if (!v.is_int() && !v.is_bool()) runtime_fail("slice {} must be an integer, not {}", what, type_name(v));
    return v.to_int();
  };
  const auto len = static_cast<int64_t>(length);
  int64_t step = as_index(step_v, "step").value_or(1);
  if (step == 0) runtime_fail("slice step cannot be zero");
  auto clamp = [&](std::optional<int64_t> index, int64_t fallback) {
    if (!index) return fallback;
    int64_t i = *index < 0 ? *index + len : *index;
    if (step > 0) return std::clamp<int64_t>(i, 0, len);
    return std::clamp<int64_t>(i, -1, len - 1);
  };
  int64_t start = clamp(as_index(start_v, "start"), step > 0 ? 0 : len - 1);
  int64_t stop = clamp(as_index(stop_v, "stop"), step > 0 ? len : -1);
  std::vector<size_t> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
    out.push_back(static_cast<size_t>(i));
    if (__builtin_add_overflow(i, step, &i)) break;  // a huge step leaves the sequence at once
  }
  return out;
}

std::optional<size_t> normalize_index(const Value& key, size_t length) {
  if (!key.is_int() && !key.is_bool()) return std::nullopt;
  int64_t i = key.to_int();
  if (i < 0) i += static_cast<int64_t>(length);
  if (i < 0 || i >= static_cast<int64_t>(length)) return std::nullopt;
  return static_cast<size_t>(i);
}

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  runtime_fail("unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(a), type_name(b));
}

// Wraps a __builtin_*_overflow result: the value must be read after the builtin has written it.
int64_t checked_op(bool (*op)(int64_t, int64_t, int64_t*), int64_t a, int64_t b) {
  int64_t result = 0;
  if (op(a, b, &result)) runtime_fail("integer overflow");
  return result;
}
bool add_op(int64_t a, int64_t b, int64_t* r) { return __builtin_add_overflow(a, b, r); }
bool sub_op(int64_t a, int64_t b, int64_t* r) { return __builtin_sub_overflow(a, b, r); }
bool mul_op(int64_t a, int64_t b, int64_t* r) { return __builtin_mul_overflow(a, b, r); }

Value int_power(int64_t base, int64_t exponent) {
  if (exponent < 0) return Value(std::pow(static_cast<double>(base), static_cast<double>(exponent)));
  int64_t result = 1;
  while (exponent > 0) {
    if (exponent & 1) result = checked_op(mul_op, result, base);
    exponent >>= 1;
    if (exponent > 0) base = checked_op(mul_op, base, base);
  }
  return Value(result);
}

Value repeat(const Value& seq, int64_t times) {
  if (times <= 0) return seq.is_string() ? Value(std::string()) : Value(ValueList{});
  const auto n = static_cast<size_t>(times);
  if (seq.is_string()) {
    check_string_size(seq.as_string().size() * std::min<size_t>(n, kMaxStringBytes + 1));
    std::string out;
    for (size_t i = 0; i < n; ++i) out += seq.as_string();
    return Value(std::move(out));
  }
  if (seq.as_list().size() * std::min<size_t>(n, kMaxListItems + 1) > kMaxListItems) runtime_fail("list too long");
  ValueList out;
  for (size_t i = 0; i < n; ++i) out.insert(out.end(), seq.as_list().begin(), seq.as_list().end());
  return Value(std::move(out));
}

Value add(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return Value(a.to_double() + b.to_double());
    return Value(checked_op(add_op, a.to_int(), b.to_int()));
  }
  if (a.is_string() && b.is_string()) {
    check_string_size(a.as_string().size() + b.as_string().size());
    return Value(a.as_string() + b.as_string());
  }
  if (a.is_list() && b.is_list()) {
    if (a.as_list().size() + b.as_list().size() > kMaxListItems) runtime_fail("list too long");
    ValueList out = a.as_list();
    out.insert(out.end(), b.as_list().begin(), b.as_list().end());
    return Value(std::move(out));
  }
  unsupported("+", a, b);
}

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  if (!a.is_number() || !b.is_number()) unsupported(op, a, b);
  bool as_float = a.is_float() || b.is_float();
  if (op == "-") {
    if (as_float) return Value(a.to_double() - b.to_double());
    return Value(checked_op(sub_op, a.to_int(), b.to_int()));
  }
  if (op == "*") {
    if (as_float) return Value(a.to_double() * b.to_double());
    return Value(checked_op(mul_op, a.to_int(), b.to_int()));
  }
  if (op == "**") {
    if (as_float) return Value(std::pow(a.to_double(), b.to_double()));
    return int_power(a.to_int(), b.to_int());
  }
  if (b.to_double() == 0.0) runtime_fail("division by zero");
  if (op == "/") return Value(a.to_double() / b.to_double());
  if (as_float) {
    double q = std::floor(a.to_double() / b.to_double());
    return op == "//" ? Value(q) : Value(a.to_double() - q * b.to_double());
  }
  int64_t x = a.to_int(), y = b.to_int();
  if (x == INT64_MIN && y == -1) runtime_fail("integer overflow");
  int64_t q = x / y, r = x % y;
  if (r != 0 && ((r < 0) != (y < 0))) {  // Python rounds toward negative infinity
    --q;
    r += y;
  }
  return Value(op == "//" ? q : r);
}

}  // namespace

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    if (a.is_string() && b.is_string()) {  // the common case: no temporary copies of big strings
      check_string_size(a.as_string().size() + b.as_string().size());
      return Value(a.as_string() + b.as_string());
    }
    std::string left = to_output(a), right = to_output(b);
    check_string_size(left.size() + right.size());
    return Value(left + right);
  }
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (op == "+") return add(a, b);
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return repeat(a, b.to_int());
    if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return repeat(b, a.to_int());
  }
  if (op == "%" && a.is_string()) return Value(percent_format(a.as_string(), b));
  return arithmetic(op, a, b);
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kString:
      if (!item.is_string()) runtime_fail("'in <string>' requires string as left operand, not {}", type_name(item));
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
      for (const auto& v : container.as_list()) {
        if (equals(v, item)) return true;
      }
      return false;
    case Value::Kind::kDict: return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
    case Value::Kind::kUndefined: return false;
    default: runtime_fail("argument of type '{}' is not iterable", type_name(container));
  }
}

size_t length_of(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kString: return codepoint_count(v.as_string());
    case Value::Kind::kList: return v.as_list().size();
    case Value::Kind::kDict: return v.as_dict().items.size();
    case Value::Kind::kUndefined: return 0;
    default: runtime_fail("object of type '{}' has no len()", type_name(v));
  }
}

Value get_attribute(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (Value method = bound_method(obj, name); !method.is_undefined()) return method;
  if (obj.is_dict()) {
    if (const Value* found = obj.as_dict().find(name)) return *found;
  }
  return Value::undefined(fmt::format("{} has no attribute '{}'", object_name(obj), name));
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.is_list()) {
    if (auto i = normalize_index(key, obj.as_list().size())) return obj.as_list()[*i];
  } else if (obj.is_string()) {
    auto offsets = codepoint_offsets(obj.as_string());
    if (auto i = normalize_index(key, offsets.size() - 1)) {
      return Value(obj.as_string().substr(offsets[*i], offsets[*i + 1] - offsets[*i]));
    }
  } else if (obj.is_dict() && key.is_string()) {
    if (const Value* found = obj.as_dict().find(key.as_string())) return *found;
    return get_attribute(obj, key.as_string());  // Jinja falls back to getattr for subscripts
  }
  return Value::undefined(fmt::format("{} has no element {}", object_name(obj), to_repr(key)));
}

Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.is_list()) {
    ValueList out;
    for (size_t i : slice_indices(obj.as_list().size(), start, stop, step)) out.push_back(obj.as_list()[i]);
    return Value(std::move(out));
  }
  if (obj.is_string()) {
    const std::string& s = obj.as_string();
    auto offsets = codepoint_offsets(s);
    std::string out;
    for (size_t i : slice_indices(offsets.size() - 1, start, stop, step)) out += s.substr(offsets[i], offsets[i + 1] - offsets[i]);
    return Value(std::move(out));
  }
  // Unlike `obj[key]`, Jinja compiles a slice to a plain Python subscript, which raises.
  runtime_fail("'{}' object is not subscriptable", type_name(obj));
}

namespace {

Value range_function(const CallArgs& args) {
  const auto& p = args.positional;
  if (p.empty() || p.size() > 3 || !args.keyword.empty()) runtime_fail("range() expects 1 to 3 integer arguments");
  for (const auto& v : p) {
    if (!v.is_int() && !v.is_bool()) runtime_fail("range() arguments must be integers, not {}", type_name(v));
  }
  int64_t start = p.size() == 1 ? 0 : p[0].to_int();
  int64_t stop = p.size() == 1 ? p[0].to_int() : p[1].to_int();
  int64_t step = p.size() == 3 ? p[2].to_int() : 1;
  if (step == 0) runtime_fail("range() step must not be zero");
  // Size the range before building it, in floating point so huge bounds cannot overflow.
  double count = std::ceil((static_cast<double>(stop) - static_cast<double>(start)) / static_cast<double>(step));
  if (count > static_cast<double>(kMaxListItems)) runtime_fail("range() is too long (limit {} items)", kMaxListItems);
  ValueList out;
  for (int64_t k = 0; k < static_cast<int64_t>(std::max(count, 0.0)); ++k) out.emplace_back(start + k * step);
  return Value(std::move(out));
}

Value dict_from_args(const CallArgs& args, bool is_namespace) {
  auto dict = std::make_shared<ValueDict>();
  dict->is_namespace = is_namespace;
  for (const auto& p : args.positional) {
    if (!p.is_dict()) runtime_fail("expected a mapping argument, got {}", type_name(p));
    for (const auto& [k, v] : p.as_dict().items) dict->set(k, v);
  }
  for (const auto& [k, v] : args.keyword) dict->set(k, v);
  return Value(std::move(dict));
}

Value strftime_now(const CallArgs& args) {
  const Value* format = args.get(0, "format");
  if (format == nullptr || !format->is_string()) runtime_fail("strftime_now() expects a format string");
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buf[256];
  size_t n = std::strftime(buf, sizeof buf, format->as_string().c_str(), &local);
  return Value(std::string(buf, n));
}

}  // namespace

ValueDict builtin_globals() {
  ValueDict globals;
  globals.set("range", Value::function(range_function));
  globals.set("namespace", Value::function([](const CallArgs& a) { return dict_from_args(a, true); }));
  globals.set("dict", Value::function([](const CallArgs& a) { return dict_from_args(a, false); }));
  globals.set("raise_exception", Value::function([](const CallArgs& a) -> Value {
    const Value* message = a.get(0, "message");
    throw RuntimeError(std::string(kRaisedPrefix) + (message ? to_output(*message) : std::string()));
  }));
  globals.set("strftime_now", Value::function(strftime_now));
  return globals;
}

}  // namespace quantlab::text::jinja
