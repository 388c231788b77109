// Built-in behaviour of the Jinja interpreter: operators, attribute/item access, Python str and
// dict methods, filters, tests and global functions. These functions know nothing about source
// positions: they throw RuntimeError, and the interpreter adds the template line and column.
// The size limits, runtime_fail(), fail_undefined(), check_string_size() and iterate() live in
// support.h, included here for the interpreter and the filters.
#pragma once

#include "text/jinja/support.h"
#include "text/jinja/value.h"

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace quantlab::text::jinja {

// obj.name: Python methods of str/dict/list first (as Jinja's getattr), then dict keys.
Value get_attribute(const Value& obj, const std::string& name);
// obj[key]: list/str index (negative allowed), dict key; missing -> undefined.
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] with Python semantics; null values are omitted bounds.
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
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
