// The lowest layer of the Jinja built-ins: size limits, error helpers and iteration, shared by the
// operators (builtins.cc), the str/dict methods (methods.cc) and the filters (filters.cc). It
// depends on value.h only, so methods.cc can use it without reaching back into builtins.h.
#pragma once

#include "text/jinja/value.h"

#include <fmt/format.h>

#include <stdexcept>
#include <string>

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

// What `for x in v` iterates: list items, dict keys, string code points; undefined -> nothing.
ValueList iterate(const Value& v);

}  // namespace quantlab::text::jinja
