#include "eval/report_json_reader.h"

#include "core/error.h"

namespace quantlab::eval {

using ojson = nlohmann::ordered_json;

JsonReader::JsonReader(const ojson& j, std::string source, std::string path)
    : j_(j), source_(std::move(source)), path_(std::move(path)) {
  if (!j_.is_object() && !j_.is_array() && !j_.is_primitive()) fail("", "unexpected value");
}

std::string JsonReader::where(std::string_view key) const {
  if (key.empty()) return path_.empty() ? "(top level)" : path_;
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

void JsonReader::fail(std::string_view key, std::string_view what) const {
  fail_input("{}: {}: {}", source_, where(key), what);
}

const ojson& JsonReader::at(std::string_view key) const {
  if (!j_.is_object()) fail("", "expected an object");
  const auto it = j_.find(key);
  if (it == j_.end()) fail(key, "missing");
  return *it;
}

bool JsonReader::has(std::string_view key) const {
  return j_.is_object() && j_.contains(key) && !j_.find(key)->is_null();
}

std::string JsonReader::str(std::string_view key) const {
  const ojson& v = at(key);
  if (!v.is_string()) fail(key, "expected a string");
  return v.get<std::string>();
}

double JsonReader::num(std::string_view key) const {
  const ojson& v = at(key);
  if (!v.is_number()) fail(key, "expected a number");
  return v.get<double>();
}

uint64_t JsonReader::count(std::string_view key) const {
  const ojson& v = at(key);
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
    fail(key, "expected a non-negative integer");
  return v.get<uint64_t>();
}

bool JsonReader::flag(std::string_view key) const {
  const ojson& v = at(key);
  if (!v.is_boolean()) fail(key, "expected true or false");
  return v.get<bool>();
}

JsonReader JsonReader::object(std::string_view key) const {
  const ojson& v = at(key);
  if (!v.is_object()) fail(key, "expected an object");
  return JsonReader(v, source_, where(key));
}

std::vector<JsonReader> JsonReader::array(std::string_view key) const {
  const ojson& v = at(key);
  if (!v.is_array()) fail(key, "expected a list");
  std::vector<JsonReader> items;
  for (size_t i = 0; i < v.size(); ++i) items.emplace_back(v[i], source_, where(key) + "[" + std::to_string(i) + "]");
  return items;
}

std::vector<std::string> JsonReader::strings(std::string_view key) const {
  std::vector<std::string> out;
  for (const JsonReader& item : array(key)) out.push_back(item.as_str());
  return out;
}

std::optional<std::string> JsonReader::opt_str(std::string_view key) const {
  return has(key) ? std::optional(str(key)) : std::nullopt;
}

std::optional<double> JsonReader::opt_num(std::string_view key) const {
  return has(key) ? std::optional(num(key)) : std::nullopt;
}

std::optional<bool> JsonReader::opt_flag(std::string_view key) const {
  return has(key) ? std::optional(flag(key)) : std::nullopt;
}

double JsonReader::as_num() const {
  if (!j_.is_number()) fail("", "expected a number");
  return j_.get<double>();
}

std::string JsonReader::as_str() const {
  if (!j_.is_string()) fail("", "expected a string");
  return j_.get<std::string>();
}

}  // namespace quantlab::eval
