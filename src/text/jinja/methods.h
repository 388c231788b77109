// Python str and dict methods reachable from templates (`s.startswith(...)`, `d.items()`), and the
// string helpers the filters share with them.
#pragma once

#include "text/jinja/value.h"

#include <optional>
#include <string>

namespace quantlab::text::jinja {

// The method `name` of `obj` bound to it, or undefined when obj has no such method.
Value bound_method(const Value& obj, const std::string& name);

// str.strip / lstrip / rstrip: `chars` absent = whitespace.
std::string strip_chars(const std::string& s, const std::optional<std::string>& chars, bool left, bool right);
std::string to_upper(const std::string& s);
std::string to_lower(const std::string& s);
std::string to_title(const std::string& s);       // str.title()
std::string to_jinja_title(const std::string& s); // the `title` filter
std::string to_capitalized(const std::string& s); // str.capitalize()
std::string replace_all(const std::string& s, const std::string& old, const std::string& replacement, int64_t count);
// `format % args` for %s, %r, %d, %i, %f and %%.
std::string percent_format(const std::string& format, const Value& args);

}  // namespace quantlab::text::jinja
