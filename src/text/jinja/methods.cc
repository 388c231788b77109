#include "text/jinja/methods.h"

#include "text/jinja/support.h"

#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace quantlab::text::jinja {
namespace {

struct CodePoint {
  int32_t value;
  std::string_view bytes;
};

std::vector<CodePoint> decode(std::string_view s) {
  std::vector<CodePoint> out;
  auto offsets = codepoint_offsets(s);
  for (size_t i = 0; i + 1 < offsets.size(); ++i) {
    std::string_view piece = s.substr(offsets[i], offsets[i + 1] - offsets[i]);
    utf8proc_int32_t cp = -1;
    utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(piece.data()), static_cast<utf8proc_ssize_t>(piece.size()), &cp);
    out.push_back({cp, piece});
  }
  return out;
}

void append_cp(std::string& out, const CodePoint& c, int32_t mapped) {
  if (c.value < 0 || mapped == c.value) {
    out += c.bytes;
    return;
  }
  utf8proc_uint8_t buf[4];
  auto n = utf8proc_encode_char(mapped, buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

// Python's str.isspace() set.
bool is_py_space(int32_t cp) {
  if ((cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0) return true;
  if (cp < 0x100) return false;
  return cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
         cp == 0x205f || cp == 0x3000;
}

bool is_cased_letter(int32_t cp) {
  if (cp < 0) return false;
  auto cat = utf8proc_category(cp);
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}

std::string map_case(const std::string& s, utf8proc_int32_t (*mapping)(utf8proc_int32_t)) {
  std::string out;
  for (const auto& c : decode(s)) append_cp(out, c, c.value < 0 ? c.value : mapping(c.value));
  return out;
}

const std::string& string_arg(const CallArgs& args, size_t index, const char* name, const char* method) {
  const Value* v = args.get(index, name);
  if (v == nullptr || !v->is_string()) runtime_fail("str.{}() expects a string argument '{}'", method, name);
  return v->as_string();
}

std::optional<std::string> optional_string_arg(const CallArgs& args, size_t index, const char* name) {
  const Value* v = args.get(index, name);
  if (v == nullptr || v->is_none()) return std::nullopt;
  if (!v->is_string()) runtime_fail("expected a string for '{}', got {}", name, type_name(*v));
  return v->as_string();
}

int64_t int_arg(const CallArgs& args, size_t index, const char* name, int64_t fallback) {
  const Value* v = args.get(index, name);
  if (v == nullptr || v->is_none()) return fallback;
  if (!v->is_int() && !v->is_bool()) runtime_fail("expected an integer for '{}', got {}", name, type_name(*v));
  return v->to_int();
}

// startswith/endswith accept one string or a tuple (list) of strings.
bool affix_matches(const std::string& s, const Value& affix, bool prefix) {
  auto one = [&](const Value& v) {
    if (!v.is_string()) runtime_fail("startswith/endswith expect strings, got {}", type_name(v));
    const std::string& a = v.as_string();
    if (a.size() > s.size()) return false;
    return prefix ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (affix.is_list()) return std::any_of(affix.as_list().begin(), affix.as_list().end(), one);
  return one(affix);
}

Value split(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit) {
  ValueList parts;
  if (sep && sep->empty()) runtime_fail("str.split(): empty separator");
  if (sep) {
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      size_t hit = s.find(*sep, start);
      if (hit == std::string::npos) break;
      parts.emplace_back(s.substr(start, hit - start));
      start = hit + sep->size();
    }
    parts.emplace_back(s.substr(start));
    return Value(std::move(parts));
  }
  auto cps = decode(s);  // split on whitespace runs, dropping empty pieces
  size_t i = 0;
  while (i < cps.size()) {
    while (i < cps.size() && is_py_space(cps[i].value)) ++i;
    if (i == cps.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
      size_t begin = static_cast<size_t>(cps[i].bytes.data() - s.data());
      parts.emplace_back(strip_chars(s.substr(begin), std::nullopt, false, true));
      break;
    }
    std::string word;
    while (i < cps.size() && !is_py_space(cps[i].value)) word += cps[i++].bytes;
    parts.emplace_back(std::move(word));
  }
  return Value(std::move(parts));
}

std::string format_method(const std::string& format, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < format.size(); ++i) {
    char c = format[i];
    if ((c == '{' || c == '}') && i + 1 < format.size() && format[i + 1] == c) {
      out += c;
      ++i;
      continue;
    }
    if (c == '}') runtime_fail("str.format(): single '}}' in format string");
    if (c != '{') {
      out += c;
      continue;
    }
    size_t close = format.find('}', i);
    if (close == std::string::npos) runtime_fail("str.format(): unmatched '{{'");
    std::string field = format.substr(i + 1, close - i - 1);
    if (field.find_first_of(":!.[") != std::string::npos) runtime_fail("str.format(): format specs are not supported");
    const Value* v = nullptr;
    if (field.empty()) {
      v = auto_index < args.positional.size() ? &args.positional[auto_index++] : nullptr;
    } else if (field.size() <= 9 && std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      size_t index = std::stoul(field);  // at most 9 digits: cannot overflow
      v = index < args.positional.size() ? &args.positional[index] : nullptr;
    } else {
      v = args.kwarg(field);
    }
    if (v == nullptr) runtime_fail("str.format(): no argument for field '{{{}}}'", field);
    out += to_output(*v);
    check_string_size(out.size());
    i = close;
  }
  return out;
}

Value bool_of_all(const std::string& s, bool (*predicate)(int32_t)) {
  auto cps = decode(s);
  return Value(!cps.empty() && std::all_of(cps.begin(), cps.end(), [&](const CodePoint& c) { return predicate(c.value); }));
}

using StringMethod = Value (*)(const std::string& s, const CallArgs& args);

const std::unordered_map<std::string, StringMethod>& string_methods() {
  static const std::unordered_map<std::string, StringMethod> methods = {
      {"startswith", [](const std::string& s, const CallArgs& a) {
         const Value* p = a.get(0, "prefix");
         if (p == nullptr) runtime_fail("str.startswith() needs an argument");
         return Value(affix_matches(s, *p, true));
       }},
      {"endswith", [](const std::string& s, const CallArgs& a) {
         const Value* p = a.get(0, "suffix");
         if (p == nullptr) runtime_fail("str.endswith() needs an argument");
         return Value(affix_matches(s, *p, false));
       }},
      {"split", [](const std::string& s, const CallArgs& a) {
         return split(s, optional_string_arg(a, 0, "sep"), int_arg(a, 1, "maxsplit", -1));
       }},
      {"strip", [](const std::string& s, const CallArgs& a) { return Value(strip_chars(s, optional_string_arg(a, 0, "chars"), true, true)); }},
      {"lstrip", [](const std::string& s, const CallArgs& a) { return Value(strip_chars(s, optional_string_arg(a, 0, "chars"), true, false)); }},
      {"rstrip", [](const std::string& s, const CallArgs& a) { return Value(strip_chars(s, optional_string_arg(a, 0, "chars"), false, true)); }},
      {"upper", [](const std::string& s, const CallArgs&) { return Value(to_upper(s)); }},
      {"lower", [](const std::string& s, const CallArgs&) { return Value(to_lower(s)); }},
      {"title", [](const std::string& s, const CallArgs&) { return Value(to_title(s)); }},
      {"capitalize", [](const std::string& s, const CallArgs&) { return Value(to_capitalized(s)); }},
      {"replace", [](const std::string& s, const CallArgs& a) {
         return Value(replace_all(s, string_arg(a, 0, "old", "replace"), string_arg(a, 1, "new", "replace"), int_arg(a, 2, "count", -1)));
       }},
      {"find", [](const std::string& s, const CallArgs& a) {
         size_t hit = s.find(string_arg(a, 0, "sub", "find"));
         return hit == std::string::npos ? Value(-1) : Value(static_cast<int64_t>(codepoint_count(s.substr(0, hit))));
       }},
      {"count", [](const std::string& s, const CallArgs& a) {
         const std::string& sub = string_arg(a, 0, "sub", "count");
         if (sub.empty()) return Value(static_cast<int64_t>(codepoint_count(s) + 1));
         int64_t n = 0;
         for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
         return Value(n);
       }},
      {"join", [](const std::string& s, const CallArgs& a) {
         const Value* items = a.get(0, "iterable");
         if (items == nullptr) runtime_fail("str.join() needs an argument");
         std::string out;
         bool first = true;
         for (const auto& item : iterate(*items)) {
           if (!item.is_string()) runtime_fail("str.join(): expected str items, got {}", type_name(item));
           out += (first ? "" : s) + item.as_string();
           check_string_size(out.size());
           first = false;
         }
         return Value(std::move(out));
       }},
      {"format", [](const std::string& s, const CallArgs& a) { return Value(format_method(s, a)); }},
      {"splitlines", [](const std::string& s, const CallArgs&) {
         ValueList lines;
         size_t start = 0;
         while (start < s.size()) {
           size_t nl = s.find_first_of("\r\n", start);
           if (nl == std::string::npos) nl = s.size();
           lines.emplace_back(s.substr(start, nl - start));
           start = nl + ((nl + 1 < s.size() && s[nl] == '\r' && s[nl + 1] == '\n') ? 2 : 1);
         }
         return Value(std::move(lines));
       }},
      {"isdigit", [](const std::string& s, const CallArgs&) {
         return bool_of_all(s, [](int32_t c) { return c >= 0 && utf8proc_category(c) == UTF8PROC_CATEGORY_ND; });
       }},
      {"isalpha", [](const std::string& s, const CallArgs&) {
         return bool_of_all(s, [](int32_t c) {
           auto k = c < 0 ? UTF8PROC_CATEGORY_CN : utf8proc_category(c);
           return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
         });
       }},
      {"isspace", [](const std::string& s, const CallArgs&) { return bool_of_all(s, is_py_space); }},
  };
  return methods;
}

Value dict_method(const Value& dict, const std::string& name) {
  if (name == "items") {
    return Value::function([dict](const CallArgs&) {
      ValueList out;
      for (const auto& [k, v] : dict.as_dict().items) out.push_back(Value::tuple({Value(k), v}));
      return Value(std::move(out));
    });
  }
  if (name == "keys") return Value::function([dict](const CallArgs&) { return Value(iterate(dict)); });
  if (name == "values") {
    return Value::function([dict](const CallArgs&) {
      ValueList out;
      for (const auto& item : dict.as_dict().items) out.push_back(item.second);
      return Value(std::move(out));
    });
  }
  if (name == "get") {
    return Value::function([dict](const CallArgs& a) {
      const Value* key = a.get(0, "key");
      if (key == nullptr) runtime_fail("dict.get() needs a key");
      const Value* found = key->is_string() ? dict.as_dict().find(key->as_string()) : nullptr;
      if (found != nullptr) return *found;
      const Value* fallback = a.get(1, "default");
      return fallback ? *fallback : Value::none();
    });
  }
  return Value();
}

}  // namespace

Value bound_method(const Value& obj, const std::string& name) {
  if (obj.is_string()) {
    auto it = string_methods().find(name);
    if (it == string_methods().end()) return Value();
    StringMethod method = it->second;
    return Value::function([s = obj.as_string(), method](const CallArgs& a) { return method(s, a); });
  }
  if (obj.is_dict() && !obj.as_dict().is_namespace) return dict_method(obj, name);
  return Value();
}

std::string strip_chars(const std::string& s, const std::optional<std::string>& chars, bool left, bool right) {
  auto cps = decode(s);
  auto strip_set = chars ? decode(*chars) : std::vector<CodePoint>{};
  auto strippable = [&](const CodePoint& c) {
    if (!chars) return is_py_space(c.value);
    return std::any_of(strip_set.begin(), strip_set.end(), [&](const CodePoint& x) { return x.bytes == c.bytes; });
  };
  size_t begin = 0, end = cps.size();
  if (left) {
    while (begin < end && strippable(cps[begin])) ++begin;
  }
  if (right) {
    while (end > begin && strippable(cps[end - 1])) --end;
  }
  if (begin == end) return "";
  size_t from = static_cast<size_t>(cps[begin].bytes.data() - s.data());
  size_t to = static_cast<size_t>(cps[end - 1].bytes.data() - s.data()) + cps[end - 1].bytes.size();
  return s.substr(from, to - from);
}

std::string to_upper(const std::string& s) {
  std::string out;
  for (const auto& c : decode(s)) {
    if (c.value == 0xdf) {
      out += "SS";  // the one full-case mapping real text hits (Python: 'ß'.upper() == 'SS')
    } else {
      append_cp(out, c, c.value < 0 ? c.value : utf8proc_toupper(c.value));
    }
  }
  return out;
}
std::string to_lower(const std::string& s) { return map_case(s, utf8proc_tolower); }

std::string to_jinja_title(const std::string& s) {
  // Jinja's title filter: words start after '-', whitespace or an opening bracket; the rest of a
  // word is lower-cased (unlike str.title(), "they're" stays "They're").
  std::string out;
  bool word_start = true;
  for (const auto& c : decode(s)) {
    bool separator = c.value == '-' || c.value == '(' || c.value == '{' || c.value == '[' || c.value == '<' || is_py_space(c.value);
    if (separator || c.value < 0) {
      out += c.bytes;
    } else {
      append_cp(out, c, word_start ? utf8proc_toupper(c.value) : utf8proc_tolower(c.value));
    }
    word_start = separator;
  }
  return out;
}

std::string to_title(const std::string& s) {
  std::string out;
  bool previous_cased = false;
  for (const auto& c : decode(s)) {
    if (c.value < 0) {
      out += c.bytes;
      previous_cased = false;
      continue;
    }
    append_cp(out, c, previous_cased ? utf8proc_tolower(c.value) : utf8proc_totitle(c.value));
    previous_cased = is_cased_letter(c.value);
  }
  return out;
}

std::string to_capitalized(const std::string& s) {
  std::string out;
  bool first = true;
  for (const auto& c : decode(s)) {
    if (c.value < 0) {
      out += c.bytes;
    } else {
      append_cp(out, c, first ? utf8proc_totitle(c.value) : utf8proc_tolower(c.value));
    }
    first = false;
  }
  return out;
}

std::string replace_all(const std::string& s, const std::string& old, const std::string& replacement, int64_t count) {
  std::string out;
  int64_t done = 0;
  if (old.empty()) {  // Python inserts the replacement around every code point
    auto cps = decode(s);
    for (const auto& c : cps) {
      if (count < 0 || done < count) {
        out += replacement;
        ++done;
      }
      out += c.bytes;
      check_string_size(out.size());
    }
    if (count < 0 || done < count) out += replacement;
    return out;
  }
  size_t start = 0;
  while (count < 0 || done < count) {
    size_t hit = s.find(old, start);
    if (hit == std::string::npos) break;
    out.append(s, start, hit - start);
    out += replacement;
    check_string_size(out.size());
    start = hit + old.size();
    ++done;
  }
  out.append(s, start, std::string::npos);
  return out;
}

std::string percent_format(const std::string& format, const Value& args) {
  ValueList values = args.is_list() ? args.as_list() : ValueList{args};
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out += format[i];
      continue;
    }
    if (++i >= format.size()) runtime_fail("incomplete format: '%' at the end");
    char spec = format[i];
    if (spec == '%') {
      out += '%';
      continue;
    }
    if (next >= values.size()) runtime_fail("not enough arguments for format string");
    const Value& v = values[next++];
    switch (spec) {
      case 's': out += to_output(v); break;
      case 'r': out += to_repr(v); break;
      case 'd':
      case 'i':
        if (!v.is_number()) runtime_fail("%{} format: a number is required, not {}", spec, type_name(v));
        if (v.is_float() && !(std::fabs(v.as_float()) < 9.2e18)) runtime_fail("%{} format: number out of range", spec);
        out += std::to_string(v.is_float() ? static_cast<int64_t>(v.as_float()) : v.to_int());
        break;
      case 'f':
        if (!v.is_number()) runtime_fail("%f format: a number is required, not {}", type_name(v));
        out += fmt::format("{:.6f}", v.to_double());
        break;
      default: runtime_fail("unsupported format character '{}'", spec);
    }
    check_string_size(out.size());
  }
  if (next < values.size()) runtime_fail("not all arguments converted during string formatting");
  return out;
}

}  // namespace quantlab::text::jinja
