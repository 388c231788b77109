// Built-in behaviour of the Jinja interpreter: operators, attribute/item access, Python str and
// dict methods, filters, tests and global functions. These functions know nothing about source
// positions: they throw RuntimeError, and the interpreter adds the template line and column.
#pragma once

#include "text/jinja_value.h"

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace quantlab::text::jinja {

// Bounds that keep hostile templates from exhausting memory (checked where values grow).
inline constexpr size_t kMaxStringBytes = size_t{64} << 20;
inline constexpr size_t kMaxListItems = size_t{1} << 20;

template <typename... Args>
[[noreturn]] void runtime_fail(fmt::format_string<Args...> format, Args&&... args) {
  throw RuntimeError(fmt::format(format, std::forward<Args>(args)...));
}

// Throws the "'x' is undefined" error an operation on an undefined value raises in Jinja.
[[noreturn]] void fail_undefined(const Value& v);
void check_string_size(size_t bytes);

// obj.name: Python methods of str/dict/list first (as Jinja's getattr), then dict keys.
Value get_attribute(const Value& obj, const std::string& name);
// obj[key]: list/str index (negative allowed), dict key; missing -> undefined.
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] with Python semantics; null values are omitted bounds.
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// What `for x in v` iterates: list items, dict keys, string code points; undefined -> nothing.
ValueList iterate(const Value& v);
// Binary operators + - * / // % ** ~.
Value binary_op(const std::string& op, const Value& a, const Value& b);
// `a in b`.
bool contains(const Value& container, const Value& item);
// len(): code points for strings.
size_t length_of(const Value& v);

using FilterFn = Value (*)(const Value& input, const CallArgs& args);
using TestFn = bool (*)(const Value& input, const CallArgs& args);
FilterFn find_filter(std::string_view name);  // nullptr when there is no such filter
TestFn find_test(std::string_view name);      // nullptr when there is no such test

// Globals every render sees: range, namespace, dict, raise_exception, strftime_now.
ValueDict builtin_globals();

// Message prefix of errors raised by raise_exception(), so callers can tell them apart.
inline constexpr std::string_view kRaisedPrefix = "template raised an exception: ";

}  // namespace quantlab::text::jinja
