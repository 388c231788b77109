// The value model of the Jinja interpreter: a small variant that mirrors the Python objects Jinja2
// templates see (undefined, None, bool, int, float, str, list, dict in insertion order, callables).
// Lists and dicts are shared by reference like Python objects; only namespace() dicts are ever
// mutated (by `{% set ns.attr = ... %}`), matching transformers' immutable sandbox.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace quantlab::text::jinja {

class Value;
using ValueList = std::vector<Value>;

// An error without a source position; the interpreter adds the template line and column.
class RuntimeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Lists and dicts nest at most this deep when built (deeper input JSON is rejected), so the
// recursive printers, comparisons and destructors stay far from the stack limit.
inline constexpr int kMaxValueNesting = 200;

// Dict keys are strings: chat templates only build string-keyed mappings, and JSON has no others.
struct ValueDict {
  std::vector<std::pair<std::string, Value>> items;
  bool is_namespace = false;  // only namespace() objects accept attribute assignment

  const Value* find(std::string_view key) const;
  void set(std::string key, Value value);  // replaces in place or appends (keeps insertion order)
};

// Arguments of a call: positional then keyword, in source order.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  const Value* kwarg(std::string_view name) const;
  // Positional `index` or keyword `name`, whichever is given; nullptr when neither.
  const Value* get(size_t index, std::string_view name) const;
};

using Function = std::function<Value(const CallArgs&)>;

struct Undefined {
  std::string name;  // what was looked up, for "'x' is undefined" messages
};

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kFunction };

  Value() : data_(Undefined{}) {}
  static Value undefined(std::string name) { return Value(Undefined{std::move(name)}); }
  static Value none() { return Value(nullptr); }
  Value(bool b) : data_(b) {}
  Value(int64_t i) : data_(i) {}
  Value(int i) : data_(int64_t{i}) {}
  Value(double d) : data_(d) {}
  Value(std::string s) : data_(std::make_shared<const std::string>(std::move(s))) {}
  Value(const char* s) : data_(std::make_shared<const std::string>(s)) {}
  // Containers record their nesting depth; these throw RuntimeError beyond kMaxValueNesting.
  Value(ValueList list);
  Value(ValueDict dict) : Value(std::make_shared<ValueDict>(std::move(dict))) {}
  Value(std::shared_ptr<ValueDict> dict);
  static Value function(Function f) { return Value(std::make_shared<Function>(std::move(f))); }
  // A Python tuple: a list that prints as (a, b) and never equals a list.
  static Value tuple(ValueList items) {
    Value v(std::move(items));
    v.tuple_ = true;
    return v;
  }

  Kind kind() const { return static_cast<Kind>(data_.index()); }
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_list() const { return kind() == Kind::kList; }
  bool is_dict() const { return kind() == Kind::kDict; }
  bool is_function() const { return kind() == Kind::kFunction; }
  bool is_tuple() const { return tuple_; }
  int nesting() const { return nesting_; }  // 0 for scalars, 1 + deepest item for containers
  // True for namespace() objects and containers holding one. Namespaces are the only mutable
  // values; refusing to store them in namespaces rules out reference cycles.
  bool holds_namespace() const { return holds_namespace_; }

  bool as_bool() const { return std::get<bool>(data_); }
  int64_t as_int() const { return std::get<int64_t>(data_); }
  double as_float() const { return std::get<double>(data_); }
  const std::string& as_string() const { return *std::get<std::shared_ptr<const std::string>>(data_); }
  const ValueList& as_list() const { return *std::get<std::shared_ptr<ValueList>>(data_); }
  const ValueDict& as_dict() const { return *std::get<std::shared_ptr<ValueDict>>(data_); }
  ValueDict& mutable_dict() const { return *std::get<std::shared_ptr<ValueDict>>(data_); }
  const Function& as_function() const { return *std::get<std::shared_ptr<Function>>(data_); }
  const std::string& undefined_name() const { return std::get<Undefined>(data_).name; }

  // Numeric view for arithmetic (bool counts as int, as in Python).
  double to_double() const;
  int64_t to_int() const;  // int or bool; anything else throws RuntimeError

  static Value from_json(const nlohmann::ordered_json& json);
  nlohmann::ordered_json to_json() const;  // throws for undefined and functions

 private:
  static Value from_json(const nlohmann::ordered_json& json, int depth);
  explicit Value(Undefined u) : data_(std::move(u)) {}
  explicit Value(std::nullptr_t) : data_(nullptr) {}
  explicit Value(std::shared_ptr<Function> f) : data_(std::move(f)) {}

  // Strings, lists and dicts are shared: copying a Value (every variable lookup) is cheap.
  std::variant<Undefined, std::nullptr_t, bool, int64_t, double, std::shared_ptr<const std::string>,
               std::shared_ptr<ValueList>, std::shared_ptr<ValueDict>, std::shared_ptr<Function>>
      data_;
  bool tuple_ = false;
  bool holds_namespace_ = false;
  uint16_t nesting_ = 0;
};

// Python truthiness: empty strings/lists/dicts, 0, None and undefined are false.
bool truthy(const Value& v);
// Python ==, deep for lists and dicts (1 == 1.0 == True).
bool equals(const Value& a, const Value& b);
// Python <: numbers with numbers, strings with strings, lists element-wise; nullopt when the types
// cannot be ordered (the caller reports the error with a source location).
std::optional<bool> less_than(const Value& a, const Value& b);
// Python type name for error messages ("str", "int", "dict", "undefined", ...).
const char* type_name(const Value& v);

// str(value) as Jinja prints it: undefined -> "", None -> "None", True -> "True", 1.0 -> "1.0",
// lists and dicts in Python repr form.
std::string to_output(const Value& v);
// repr(value): strings quoted the Python way.
std::string to_repr(const Value& v);
// Python float repr (shortest round trip, "1.0", "1e-05", "inf", "nan").
std::string format_python_float(double d);

// Python json.dumps arguments. Defaults are transformers' `tojson`: ensure_ascii=False, keys in
// insertion order, separators ", " and ": " (with an indent, Python's item separator becomes ",").
struct JsonDumpOptions {
  int indent = -1;  // < 0: None (one line); >= 0: newline + that many spaces per level
  bool ensure_ascii = false;
  bool sort_keys = false;
  std::optional<std::pair<std::string, std::string>> separators;  // (item, key); nullopt: Python's default
};
// json.dumps(value, ...) as Python writes it.
// Returns nullopt for values JSON cannot hold (undefined, functions).
std::optional<std::string> dump_json(const Value& v, const JsonDumpOptions& options);

// UTF-8 helpers so that len(), indexing and slicing count code points like Python str.
std::vector<size_t> codepoint_offsets(std::string_view s);  // start byte of each code point + end
size_t codepoint_count(std::string_view s);

}  // namespace quantlab::text::jinja
