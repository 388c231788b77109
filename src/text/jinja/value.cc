#include "text/jinja/value.h"

#include "core/error.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace quantlab::text::jinja {

const Value* ValueDict::find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

void ValueDict::set(std::string key, Value value) {
  for (auto& [k, v] : items) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(value));
}

const Value* CallArgs::kwarg(std::string_view name) const {
  for (const auto& [k, v] : keyword) {
    if (k == name) return &v;
  }
  return nullptr;
}

const Value* CallArgs::get(size_t index, std::string_view name) const {
  if (index < positional.size()) return &positional[index];
  return kwarg(name);
}

namespace {

void absorb(int& depth, bool& holds_namespace, const Value& item) {
  depth = std::max(depth, item.nesting());
  holds_namespace = holds_namespace || item.holds_namespace();
}

int checked_nesting(int deepest_item) {
  if (deepest_item + 1 > kMaxValueNesting) {
    throw RuntimeError("values nest deeper than " + std::to_string(kMaxValueNesting) + " levels");
  }
  return deepest_item + 1;
}

}  // namespace

Value::Value(ValueList list) {
  int deepest = 0;
  bool holds = false;
  for (const auto& item : list) absorb(deepest, holds, item);
  nesting_ = static_cast<uint16_t>(checked_nesting(deepest));
  holds_namespace_ = holds;
  data_ = std::make_shared<ValueList>(std::move(list));
}

Value::Value(std::shared_ptr<ValueDict> dict) {
  int deepest = 0;
  bool holds = dict->is_namespace;
  for (const auto& item : dict->items) absorb(deepest, holds, item.second);
  nesting_ = static_cast<uint16_t>(checked_nesting(deepest));
  holds_namespace_ = holds;
  data_ = std::move(dict);
}

double Value::to_double() const {
  switch (kind()) {
    case Kind::kBool: return as_bool() ? 1.0 : 0.0;
    case Kind::kInt: return static_cast<double>(as_int());
    case Kind::kFloat: return as_float();
    default: return 0.0;
  }
}

int64_t Value::to_int() const {
  if (is_bool()) return as_bool() ? 1 : 0;
  if (!is_int()) throw RuntimeError(std::string("expected an integer, got ") + type_name(*this));
  return as_int();
}

Value Value::from_json(const nlohmann::ordered_json& json) { return from_json(json, 0); }

Value Value::from_json(const nlohmann::ordered_json& json, int depth) {
  using T = nlohmann::ordered_json::value_t;
  if (depth >= kMaxValueNesting && (json.is_array() || json.is_object())) {
    fail_input("template variables nest deeper than {} levels", kMaxValueNesting);
  }
  switch (json.type()) {
    case T::null: return none();
    case T::boolean: return Value(json.get<bool>());
    case T::number_integer: return Value(json.get<int64_t>());
    case T::number_unsigned: {
      uint64_t u = json.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<double>(u));
      return Value(static_cast<int64_t>(u));
    }
    case T::number_float: return Value(json.get<double>());
    case T::string: return Value(json.get<std::string>());
    case T::array: {
      ValueList list;
      list.reserve(json.size());
      for (const auto& item : json) list.push_back(from_json(item, depth + 1));
      return Value(std::move(list));
    }
    case T::object: {
      ValueDict dict;
      dict.items.reserve(json.size());
      for (const auto& [k, v] : json.items()) dict.items.emplace_back(k, from_json(v, depth + 1));
      return Value(std::move(dict));
    }
    default: return undefined("");  // binary / discarded: nothing a template can use
  }
}

nlohmann::ordered_json Value::to_json() const {
  switch (kind()) {
    case Kind::kNone: return nullptr;
    case Kind::kBool: return as_bool();
    case Kind::kInt: return as_int();
    case Kind::kFloat: return as_float();
    case Kind::kString: return as_string();
    case Kind::kList: {
      auto out = nlohmann::ordered_json::array();
      for (const auto& item : as_list()) out.push_back(item.to_json());
      return out;
    }
    case Kind::kDict: {
      auto out = nlohmann::ordered_json::object();
      for (const auto& [k, v] : as_dict().items) out[k] = v.to_json();
      return out;
    }
    default: fail_input("template value of type {} cannot be converted to JSON", type_name(*this));
  }
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return false;
    case Value::Kind::kBool: return v.as_bool();
    case Value::Kind::kInt: return v.as_int() != 0;
    case Value::Kind::kFloat: return v.as_float() != 0.0;
    case Value::Kind::kString: return !v.as_string().empty();
    case Value::Kind::kList: return !v.as_list().empty();
    case Value::Kind::kDict: return !v.as_dict().items.empty();
    case Value::Kind::kFunction: return true;
  }
  return false;
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.to_double() == b.to_double();
    return a.to_int() == b.to_int();
  }
  if (a.kind() != b.kind() || a.is_tuple() != b.is_tuple()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return true;
    case Value::Kind::kString: return a.as_string() == b.as_string();
    case Value::Kind::kList: {
      const auto& x = a.as_list();
      const auto& y = b.as_list();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!equals(x[i], y[i])) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      const auto& x = a.as_dict().items;
      const auto& y = b.as_dict();
      if (x.size() != y.items.size()) return false;
      for (const auto& [k, v] : x) {
        const Value* other = y.find(k);
        if (other == nullptr || !equals(v, *other)) return false;
      }
      return true;
    }
    case Value::Kind::kFunction: return &a.as_function() == &b.as_function();
    default: return false;
  }
}

std::optional<bool> less_than(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.to_double() < b.to_double();
    return a.to_int() < b.to_int();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
  if (a.is_list() && b.is_list()) {
    const auto& x = a.as_list();
    const auto& y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equals(x[i], y[i])) continue;
      return less_than(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  return std::nullopt;
}

const char* type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return "undefined";
    case Value::Kind::kNone: return "NoneType";
    case Value::Kind::kBool: return "bool";
    case Value::Kind::kInt: return "int";
    case Value::Kind::kFloat: return "float";
    case Value::Kind::kString: return "str";
    case Value::Kind::kList: return "list";
    case Value::Kind::kDict: return "dict";
    case Value::Kind::kFunction: return "function";
  }
  return "?";
}

std::string format_python_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // e.g. "-1.25e+03": shortest round-trip digits
  bool negative = sci[0] == '-';
  size_t epos = sci.find('e');
  std::string mantissa = sci.substr(negative ? 1 : 0, epos - (negative ? 1 : 0));
  int exponent = std::stoi(sci.substr(epos + 1));
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits += c;
  }
  std::string out = negative ? "-" : "";
  if (exponent < -4 || exponent >= 16) {  // Python's repr switches to exponent notation here
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp_buf[16];
    std::snprintf(exp_buf, sizeof exp_buf, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out + exp_buf;
  }
  if (exponent < 0) return out + "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
  size_t int_digits = static_cast<size_t>(exponent) + 1;
  if (digits.size() <= int_digits) return out + digits + std::string(int_digits - digits.size(), '0') + ".0";
  return out + digits.substr(0, int_digits) + "." + digits.substr(int_digits);
}

namespace {

std::string repr_string(const std::string& s) {
  char quote = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  std::string out(1, quote);
  for (unsigned char c : s) {
    if (c == '\\' || c == static_cast<unsigned char>(quote)) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + quote;
}

void append_unicode_escape(std::string& out, uint32_t unit) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\u%04x", unit);
  out += buf;
}

// Decodes one UTF-8 sequence at s[i] (advancing i); invalid bytes come back as themselves.
uint32_t next_codepoint(const std::string& s, size_t& i) {
  auto b = static_cast<unsigned char>(s[i]);
  size_t len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xe ? 3 : (b >> 3) == 0x1e ? 4 : 1;
  if (i + len > s.size()) len = 1;
  uint32_t cp = len == 1 ? b : len == 2 ? (b & 0x1f) : len == 3 ? (b & 0x0f) : (b & 0x07);
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
  i += len;
  return cp;
}

void append_json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t start = i;
      uint32_t cp = next_codepoint(s, i);
      if (!ensure_ascii) {
        out.append(s, start, i - start);
      } else if (cp >= 0x10000) {  // Python writes a UTF-16 surrogate pair
        append_unicode_escape(out, 0xd800 + ((cp - 0x10000) >> 10));
        append_unicode_escape(out, 0xdc00 + ((cp - 0x10000) & 0x3ff));
      } else {
        append_unicode_escape(out, cp);
      }
      continue;
    }
    ++i;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          append_unicode_escape(out, c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

class JsonWriter {
 public:
  explicit JsonWriter(const JsonDumpOptions& options) : o_(options) {
    if (o_.separators) {
      item_sep_ = o_.separators->first;
      key_sep_ = o_.separators->second;
    } else {
      item_sep_ = o_.indent >= 0 ? "," : ", ";
      key_sep_ = ": ";
    }
  }

  bool write(std::string& out, const Value& v, int depth) const {
    switch (v.kind()) {
      case Value::Kind::kNone: out += "null"; return true;
      case Value::Kind::kBool: out += v.as_bool() ? "true" : "false"; return true;
      case Value::Kind::kInt: out += std::to_string(v.as_int()); return true;
      case Value::Kind::kFloat: {
        double d = v.as_float();
        out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : format_python_float(d);
        return true;
      }
      case Value::Kind::kString: append_json_string(out, v.as_string(), o_.ensure_ascii); return true;
      case Value::Kind::kList: return write_list(out, v.as_list(), depth);
      case Value::Kind::kDict: return write_dict(out, v.as_dict(), depth);
      default: return false;
    }
  }

 private:
  void newline(std::string& out, int level) const {
    if (o_.indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(o_.indent) * static_cast<size_t>(level), ' ');
  }

  bool write_list(std::string& out, const ValueList& list, int depth) const {
    if (list.empty()) {
      out += "[]";
      return true;
    }
    out += '[';
    for (size_t i = 0; i < list.size(); ++i) {
      if (i > 0) out += item_sep_;
      newline(out, depth + 1);
      if (!write(out, list[i], depth + 1)) return false;
    }
    newline(out, depth);
    out += ']';
    return true;
  }

  bool write_dict(std::string& out, const ValueDict& dict, int depth) const {
    if (dict.items.empty()) {
      out += "{}";
      return true;
    }
    std::vector<const std::pair<std::string, Value>*> items;
    for (const auto& item : dict.items) items.push_back(&item);
    if (o_.sort_keys) {
      std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
    }
    out += '{';
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) out += item_sep_;
      newline(out, depth + 1);
      append_json_string(out, items[i]->first, o_.ensure_ascii);
      out += key_sep_;
      if (!write(out, items[i]->second, depth + 1)) return false;
    }
    newline(out, depth);
    out += '}';
    return true;
  }

  const JsonDumpOptions& o_;
  std::string item_sep_, key_sep_;
};

}  // namespace

std::string to_repr(const Value& v) {
  if (v.is_string()) return repr_string(v.as_string());
  if (v.is_undefined()) return "Undefined";  // Jinja's Undefined inside a printed list
  return to_output(v);
}

std::string to_output(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return "";
    case Value::Kind::kNone: return "None";
    case Value::Kind::kBool: return v.as_bool() ? "True" : "False";
    case Value::Kind::kInt: return std::to_string(v.as_int());
    case Value::Kind::kFloat: return format_python_float(v.as_float());
    case Value::Kind::kString: return v.as_string();
    case Value::Kind::kList: {
      std::string out = v.is_tuple() ? "(" : "[";
      const auto& list = v.as_list();
      for (size_t i = 0; i < list.size(); ++i) out += (i ? ", " : "") + to_repr(list[i]);
      if (v.is_tuple()) return out + (list.size() == 1 ? ",)" : ")");
      return out + "]";
    }
    case Value::Kind::kDict: {
      std::string out = "{";
      const auto& items = v.as_dict().items;
      for (size_t i = 0; i < items.size(); ++i) {
        out += (i ? ", " : "") + repr_string(items[i].first) + ": " + to_repr(items[i].second);
      }
      return out + "}";
    }
    case Value::Kind::kFunction: return "<function>";
  }
  return "";
}

std::optional<std::string> dump_json(const Value& v, const JsonDumpOptions& options) {
  std::string out;
  if (!JsonWriter(options).write(out, v, 0)) return std::nullopt;
  return out;
}

std::vector<size_t> codepoint_offsets(std::string_view s) {
  std::vector<size_t> offsets;
  offsets.reserve(s.size() + 1);
  size_t i = 0;
  while (i < s.size()) {
    offsets.push_back(i);
    auto lead = static_cast<unsigned char>(s[i]);
    size_t len = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xe ? 3 : (lead >> 3) == 0x1e ? 4 : 1;
    size_t step = 1;  // invalid or truncated sequences count one code point per byte
    while (step < len && i + step < s.size() && (static_cast<unsigned char>(s[i + step]) & 0xc0) == 0x80) ++step;
    i += step == len ? len : 1;
  }
  offsets.push_back(s.size());
  return offsets;
}

size_t codepoint_count(std::string_view s) { return codepoint_offsets(s).size() - 1; }

}  // namespace quantlab::text::jinja
