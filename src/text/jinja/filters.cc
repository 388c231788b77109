// Jinja filters and tests (the subset real chat templates use, with Jinja2's semantics).
// `tojson` is transformers' version: ensure_ascii=False, separators ", " and ": ", keys unsorted.
#include "text/jinja/builtins.h"
#include "text/jinja/methods.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace quantlab::text::jinja {
namespace {

Value arg_or(const CallArgs& args, size_t index, const char* name, Value fallback) {
  const Value* v = args.get(index, name);
  return v ? *v : fallback;
}

std::string string_or(const CallArgs& args, size_t index, const char* name, const std::string& fallback) {
  const Value* v = args.get(index, name);
  if (v == nullptr || v->is_none()) return fallback;
  if (!v->is_string()) runtime_fail("argument '{}' must be a string, not {}", name, type_name(*v));
  return v->as_string();
}

// Dotted attribute path lookup used by map/selectattr/sort/join ("a.b" or "0").
Value lookup_path(const Value& item, const std::string& path) {
  Value current = item;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && part.size() <= 18 &&  // 18 digits always fit in int64
                   std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (current.is_undefined()) return current;
    current = numeric ? get_item(current, Value(static_cast<int64_t>(std::stoll(part)))) : get_item(current, Value(part));
    if (dot == std::string::npos) return current;
    start = dot + 1;
  }
}

// Applies the test named by args[first] (with the rest as its arguments) to `item`.
bool run_named_test(const Value& item, const CallArgs& args, size_t first) {
  if (args.positional.size() <= first) return truthy(item);
  const Value& name = args.positional[first];
  if (!name.is_string()) runtime_fail("test name must be a string");
  TestFn test = find_test(name.as_string());
  if (test == nullptr) runtime_fail("no test named '{}'", name.as_string());
  CallArgs test_args;
  test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(first) + 1, args.positional.end());
  return test(item, test_args);
}

Value select_items(const Value& input, const CallArgs& args, bool by_attribute, bool keep) {
  ValueList out;
  std::string attribute;
  if (by_attribute) {
    if (args.positional.empty() || !args.positional[0].is_string()) runtime_fail("selectattr/rejectattr need an attribute name");
    attribute = args.positional[0].as_string();
  }
  for (const auto& item : iterate(input)) {
    Value subject = by_attribute ? lookup_path(item, attribute) : item;
    if (run_named_test(subject, args, by_attribute ? 1 : 0) == keep) out.push_back(item);
  }
  return Value(std::move(out));
}

Value map_filter(const Value& input, const CallArgs& args) {
  ValueList out;
  if (const Value* attribute = args.kwarg("attribute")) {
    if (!attribute->is_string()) runtime_fail("map(attribute=...) needs a string");
    const Value* fallback = args.kwarg("default");
    for (const auto& item : iterate(input)) {
      Value v = lookup_path(item, attribute->as_string());
      out.push_back(v.is_undefined() && fallback ? *fallback : v);
    }
    return Value(std::move(out));
  }
  if (args.positional.empty() || !args.positional[0].is_string()) runtime_fail("map() needs a filter name or attribute=");
  FilterFn filter = find_filter(args.positional[0].as_string());
  if (filter == nullptr) runtime_fail("no filter named '{}'", args.positional[0].as_string());
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const auto& item : iterate(input)) out.push_back(filter(item, rest));
  return Value(std::move(out));
}

// transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
Value tojson_filter(const Value& input, const CallArgs& args) {
  JsonDumpOptions options;
  options.ensure_ascii = truthy(arg_or(args, 0, "ensure_ascii", Value(false)));
  Value indent = arg_or(args, 1, "indent", Value::none());
  if (!indent.is_none()) {
    if (!indent.is_int()) runtime_fail("tojson(indent=...) must be an integer");
    options.indent = static_cast<int>(std::clamp<int64_t>(indent.as_int(), 0, 64));  // Python: ' ' * n
  }
  Value separators = arg_or(args, 2, "separators", Value::none());
  if (!separators.is_none()) {
    if (!separators.is_list() || separators.as_list().size() != 2 || !separators.as_list()[0].is_string() ||
        !separators.as_list()[1].is_string()) {
      runtime_fail("tojson(separators=...) must be a pair of strings");
    }
    options.separators = std::make_pair(separators.as_list()[0].as_string(), separators.as_list()[1].as_string());
  }
  options.sort_keys = truthy(arg_or(args, 3, "sort_keys", Value(false)));
  auto text = dump_json(input, options);
  if (!text) runtime_fail("object of type '{}' is not JSON serializable", type_name(input));
  check_string_size(text->size());
  return Value(std::move(*text));
}

Value join_filter(const Value& input, const CallArgs& args) {
  std::string separator = string_or(args, 0, "d", "");
  const Value* attribute = args.get(1, "attribute");
  std::string out;
  bool first = true;
  for (const auto& item : iterate(input)) {
    if (!first) out += separator;
    out += to_output(attribute && attribute->is_string() ? lookup_path(item, attribute->as_string()) : item);
    check_string_size(out.size());
    first = false;
  }
  return Value(std::move(out));
}

bool fits_int64(double d) { return std::isfinite(d) && std::fabs(d) < 9.2e18; }

Value int_filter(const Value& input, const CallArgs& args) {
  Value fallback = arg_or(args, 0, "default", Value(0));
  if (input.is_int() || input.is_bool()) return Value(input.to_int());
  if (input.is_float()) return fits_int64(input.as_float()) ? Value(static_cast<int64_t>(input.as_float())) : fallback;
  if (input.is_string()) {
    std::string s = strip_chars(input.as_string(), std::nullopt, true, true);
    try {
      size_t used = 0;
      long long v = std::stoll(s, &used, static_cast<int>(arg_or(args, 1, "base", Value(10)).to_int()));
      if (used == s.size()) return Value(static_cast<int64_t>(v));
      size_t fused = 0;
      double d = std::stod(s, &fused);  // Jinja falls back to int(float(s))
      if (fused == s.size() && fits_int64(d)) return Value(static_cast<int64_t>(d));
    } catch (const std::exception&) {
    }
  }
  return fallback;
}

Value float_filter(const Value& input, const CallArgs& args) {
  Value fallback = arg_or(args, 0, "default", Value(0.0));
  if (input.is_number()) return Value(input.to_double());
  if (input.is_string()) {
    std::string s = strip_chars(input.as_string(), std::nullopt, true, true);
    try {
      size_t used = 0;
      double d = std::stod(s, &used);
      if (used == s.size()) return Value(d);
    } catch (const std::exception&) {
    }
  }
  return fallback;
}

Value sort_filter(const Value& input, const CallArgs& args) {
  bool reverse = truthy(arg_or(args, 0, "reverse", Value(false)));
  bool case_sensitive = truthy(arg_or(args, 1, "case_sensitive", Value(false)));
  const Value* attribute = args.get(2, "attribute");
  ValueList items = iterate(input);
  auto key = [&](const Value& v) {
    Value k = attribute && attribute->is_string() ? lookup_path(v, attribute->as_string()) : v;
    return (!case_sensitive && k.is_string()) ? Value(to_lower(k.as_string())) : k;
  };
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    auto lt = reverse ? less_than(key(b), key(a)) : less_than(key(a), key(b));
    if (!lt) runtime_fail("sort: cannot compare {} and {}", type_name(a), type_name(b));
    return *lt;
  });
  return Value(std::move(items));
}

Value extreme(const Value& input, const CallArgs& args, bool want_max) {
  ValueList items = iterate(input);
  if (items.empty()) return Value::undefined("min/max of an empty sequence");
  Value best = items[0];
  for (const auto& v : items) {
    auto lt = want_max ? less_than(best, v) : less_than(v, best);
    if (!lt) runtime_fail("min/max: cannot compare {} and {}", type_name(best), type_name(v));
    if (*lt) best = v;
  }
  return best;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

Value indent_filter(const Value& input, const CallArgs& args) {
  Value width = arg_or(args, 0, "width", Value(4));
  std::string pad = width.is_string() ? width.as_string() : std::string(static_cast<size_t>(std::clamp<int64_t>(width.to_int(), 0, 256)), ' ');
  bool first = truthy(arg_or(args, 1, "first", Value(false)));
  bool blank = truthy(arg_or(args, 2, "blank", Value(false)));
  std::string s = to_output(input), out;
  size_t start = 0, line_no = 0;
  while (true) {
    size_t nl = s.find('\n', start);
    std::string line = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    bool indent_it = (line_no > 0 || first) && (blank || !strip_chars(line, std::nullopt, true, true).empty());
    out += (indent_it ? pad : "") + line;
    check_string_size(out.size());
    if (nl == std::string::npos) break;
    out += '\n';
    start = nl + 1;
    ++line_no;
  }
  return Value(std::move(out));
}

Value items_filter(const Value& input, const CallArgs&) {
  if (input.is_undefined()) return Value(ValueList{});
  if (!input.is_dict()) runtime_fail("items filter expects a mapping, got {}", type_name(input));
  ValueList out;
  for (const auto& [k, v] : input.as_dict().items) out.push_back(Value::tuple({Value(k), v}));
  return Value(std::move(out));
}

Value dictsort_filter(const Value& input, const CallArgs& args) {
  if (!input.is_dict()) runtime_fail("dictsort expects a mapping, got {}", type_name(input));
  bool case_sensitive = truthy(arg_or(args, 0, "case_sensitive", Value(false)));
  bool by_value = to_output(arg_or(args, 1, "by", Value("key"))) == "value";
  bool reverse = truthy(arg_or(args, 2, "reverse", Value(false)));
  ValueList pairs = items_filter(input, args).as_list();
  auto key = [&](const Value& pair) {
    const Value& k = pair.as_list()[by_value ? 1 : 0];
    return (!case_sensitive && k.is_string()) ? Value(to_lower(k.as_string())) : k;
  };
  std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& a, const Value& b) {
    auto lt = reverse ? less_than(key(b), key(a)) : less_than(key(a), key(b));
    if (!lt) runtime_fail("dictsort: cannot compare {} and {}", type_name(key(a)), type_name(key(b)));
    return *lt;
  });
  return Value(std::move(pairs));
}

Value unique_filter(const Value& input, const CallArgs& args) {
  ValueList out;
  for (const auto& item : iterate(input)) {
    if (std::none_of(out.begin(), out.end(), [&](const Value& seen) { return equals(seen, item); })) out.push_back(item);
  }
  return Value(std::move(out));
}

Value sum_filter(const Value& input, const CallArgs& args) {
  const Value* attribute = args.get(0, "attribute");
  Value total = arg_or(args, 1, "start", Value(0));
  for (const auto& item : iterate(input)) {
    total = binary_op("+", total, attribute && attribute->is_string() ? lookup_path(item, attribute->as_string()) : item);
  }
  return total;
}

Value round_filter(const Value& input, const CallArgs& args) {
  if (!input.is_number()) runtime_fail("round filter expects a number, got {}", type_name(input));
  int64_t precision = arg_or(args, 0, "precision", Value(0)).to_int();
  std::string method = string_or(args, 1, "method", "common");
  double scale = std::pow(10.0, static_cast<double>(precision));
  double x = input.to_double() * scale;
  // "common" is Python's round(): halves go to the even neighbour.
  double r = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::nearbyint(x);
  return Value(r / scale);
}

const std::unordered_map<std::string_view, FilterFn>& filters() {
  static const std::unordered_map<std::string_view, FilterFn> table = {
      {"tojson", tojson_filter},
      {"trim", [](const Value& v, const CallArgs& a) {
         auto chars = a.get(0, "chars");
         return Value(strip_chars(to_output(v), chars && chars->is_string() ? std::optional(chars->as_string()) : std::nullopt, true, true));
       }},
      {"length", [](const Value& v, const CallArgs&) { return Value(static_cast<int64_t>(length_of(v))); }},
      {"count", [](const Value& v, const CallArgs&) { return Value(static_cast<int64_t>(length_of(v))); }},
      {"list", [](const Value& v, const CallArgs&) { return Value(iterate(v)); }},
      {"join", join_filter},
      {"default", [](const Value& v, const CallArgs& a) {
         bool use_fallback = v.is_undefined() || (truthy(arg_or(a, 1, "boolean", Value(false))) && !truthy(v));
         return use_fallback ? arg_or(a, 0, "default_value", Value(std::string())) : v;
       }},
      {"first", [](const Value& v, const CallArgs&) {
         ValueList items = iterate(v);
         return items.empty() ? Value::undefined("first() of an empty sequence") : items.front();
       }},
      {"last", [](const Value& v, const CallArgs&) {
         ValueList items = iterate(v);
         return items.empty() ? Value::undefined("last() of an empty sequence") : items.back();
       }},
      {"lower", [](const Value& v, const CallArgs&) { return Value(to_lower(to_output(v))); }},
      {"upper", [](const Value& v, const CallArgs&) { return Value(to_upper(to_output(v))); }},
      {"capitalize", [](const Value& v, const CallArgs&) { return Value(to_capitalized(to_output(v))); }},
      {"title", [](const Value& v, const CallArgs&) { return Value(to_jinja_title(to_output(v))); }},
      {"replace", [](const Value& v, const CallArgs& a) {
         Value count = arg_or(a, 2, "count", Value::none());
         return Value(replace_all(to_output(v), string_or(a, 0, "old", ""), string_or(a, 1, "new", ""),
                                  count.is_none() ? -1 : count.to_int()));
       }},
      {"string", [](const Value& v, const CallArgs&) { return Value(to_output(v)); }},
      {"int", int_filter},
      {"float", float_filter},
      {"abs", [](const Value& v, const CallArgs&) {
         if (v.is_float()) return Value(std::fabs(v.as_float()));
         if (!v.is_number()) runtime_fail("abs expects a number, got {}", type_name(v));
         if (v.to_int() == INT64_MIN) runtime_fail("integer overflow");
         return Value(v.to_int() < 0 ? -v.to_int() : v.to_int());
       }},
      {"round", round_filter},
      {"items", items_filter},
      {"selectattr", [](const Value& v, const CallArgs& a) { return select_items(v, a, true, true); }},
      {"rejectattr", [](const Value& v, const CallArgs& a) { return select_items(v, a, true, false); }},
      {"select", [](const Value& v, const CallArgs& a) { return select_items(v, a, false, true); }},
      {"reject", [](const Value& v, const CallArgs& a) { return select_items(v, a, false, false); }},
      {"map", map_filter},
      {"safe", [](const Value& v, const CallArgs&) { return v; }},
      {"escape", [](const Value& v, const CallArgs&) { return Value(html_escape(to_output(v))); }},
      {"reverse", [](const Value& v, const CallArgs&) {
         return v.is_string() ? get_slice(v, Value::none(), Value::none(), Value(-1)) : [&] {
           ValueList items = iterate(v);
           std::reverse(items.begin(), items.end());
           return Value(std::move(items));
         }();
       }},
      {"sort", sort_filter},
      {"unique", unique_filter},
      {"dictsort", dictsort_filter},
      {"indent", indent_filter},
      {"sum", sum_filter},
      {"min", [](const Value& v, const CallArgs& a) { return extreme(v, a, false); }},
      {"max", [](const Value& v, const CallArgs& a) { return extreme(v, a, true); }},
      {"attr", [](const Value& v, const CallArgs& a) { return get_attribute(v, string_or(a, 0, "name", "")); }},
      {"format", [](const Value& v, const CallArgs& a) { return Value(percent_format(to_output(v), Value(a.positional))); }},
  };
  return table;
}

bool compare_test(const Value& v, const CallArgs& a, const char* op) {
  const Value* other = a.get(0, "other");
  if (other == nullptr) runtime_fail("test '{}' needs an argument", op);
  std::string o = op;
  if (o == "==") return equals(v, *other);
  if (o == "!=") return !equals(v, *other);
  auto lt = (o == "<" || o == ">=") ? less_than(v, *other) : less_than(*other, v);
  if (!lt) runtime_fail("cannot compare {} and {}", type_name(v), type_name(*other));
  return (o == "<" || o == ">") ? *lt : !*lt;
}

bool integer_test(const Value& v) { return v.is_int(); }

// `value % 2 == remainder` as Python evaluates it (floats allowed, other types are an error).
bool parity_test(const Value& v, int64_t remainder) {
  if (v.is_float()) return std::fmod(v.as_float() - std::floor(v.as_float() / 2) * 2, 2.0) == static_cast<double>(remainder);
  if (!v.is_int() && !v.is_bool()) runtime_fail("unsupported operand type(s) for %: '{}' and 'int'", type_name(v));
  int64_t r = v.to_int() % 2;
  return (r < 0 ? r + 2 : r) == remainder;
}

const std::unordered_map<std::string_view, TestFn>& tests() {
  static const std::unordered_map<std::string_view, TestFn> table = {
      {"defined", [](const Value& v, const CallArgs&) { return !v.is_undefined(); }},
      {"undefined", [](const Value& v, const CallArgs&) { return v.is_undefined(); }},
      {"none", [](const Value& v, const CallArgs&) { return v.is_none(); }},
      {"string", [](const Value& v, const CallArgs&) { return v.is_string(); }},
      {"number", [](const Value& v, const CallArgs&) { return v.is_number(); }},
      {"integer", [](const Value& v, const CallArgs&) { return integer_test(v); }},
      {"float", [](const Value& v, const CallArgs&) { return v.is_float(); }},
      {"boolean", [](const Value& v, const CallArgs&) { return v.is_bool(); }},
      {"true", [](const Value& v, const CallArgs&) { return v.is_bool() && v.as_bool(); }},
      {"false", [](const Value& v, const CallArgs&) { return v.is_bool() && !v.as_bool(); }},
      {"mapping", [](const Value& v, const CallArgs&) { return v.is_dict(); }},
      // Jinja's Undefined is iterable (it iterates as empty), so `undefined is iterable` is true.
      {"iterable", [](const Value& v, const CallArgs&) { return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined(); }},
      {"sequence", [](const Value& v, const CallArgs&) { return v.is_string() || v.is_list() || v.is_dict(); }},
      {"callable", [](const Value& v, const CallArgs&) { return v.is_function(); }},
      {"equalto", [](const Value& v, const CallArgs& a) { return compare_test(v, a, "=="); }},
      {"eq", [](const Value& v, const CallArgs& a) { return compare_test(v, a, "=="); }},
      {"==", [](const Value& v, const CallArgs& a) { return compare_test(v, a, "=="); }},
      {"sameas", [](const Value& v, const CallArgs& a) { return compare_test(v, a, "=="); }},
      {"ne", [](const Value& v, const CallArgs& a) { return compare_test(v, a, "!="); }},
      {"!=", [](const Value& v, const CallArgs& a) { return compare_test(v, a, "!="); }},
      {"lt", [](const Value& v, const CallArgs& a) { return compare_test(v, a, "<"); }},
      {"lessthan", [](const Value& v, const CallArgs& a) { return compare_test(v, a, "<"); }},
      {"le", [](const Value& v, const CallArgs& a) { return compare_test(v, a, "<="); }},
      {"gt", [](const Value& v, const CallArgs& a) { return compare_test(v, a, ">"); }},
      {"greaterthan", [](const Value& v, const CallArgs& a) { return compare_test(v, a, ">"); }},
      {"ge", [](const Value& v, const CallArgs& a) { return compare_test(v, a, ">="); }},
      {"odd", [](const Value& v, const CallArgs&) { return parity_test(v, 1); }},
      {"even", [](const Value& v, const CallArgs&) { return parity_test(v, 0); }},
      {"divisibleby", [](const Value& v, const CallArgs& a) {
         const Value* n = a.get(0, "num");
         if (n == nullptr || !n->is_int() || n->as_int() == 0 || !v.is_int()) runtime_fail("divisibleby needs non-zero integers");
         return v.as_int() % n->as_int() == 0;
       }},
      {"in", [](const Value& v, const CallArgs& a) {
         const Value* seq = a.get(0, "seq");
         if (seq == nullptr) runtime_fail("test 'in' needs an argument");
         return contains(*seq, v);
       }},
      {"lower", [](const Value& v, const CallArgs&) { return v.is_string() && to_lower(v.as_string()) == v.as_string(); }},
      {"upper", [](const Value& v, const CallArgs&) { return v.is_string() && to_upper(v.as_string()) == v.as_string(); }},
  };
  return table;
}

}  // namespace

FilterFn find_filter(std::string_view name) {
  if (name == "d") name = "default";
  if (name == "e") name = "escape";
  auto it = filters().find(name);
  return it == filters().end() ? nullptr : it->second;
}

TestFn find_test(std::string_view name) {
  auto it = tests().find(name);
  return it == tests().end() ? nullptr : it->second;
}

}  // namespace quantlab::text::jinja
