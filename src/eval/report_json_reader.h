// Reading a JSON document back into structs with errors that name the field path
// ("RESULTS.json: models[1].speed.runs[0].decode_tokens: expected a number").
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace quantlab::eval {

class JsonReader {
 public:
  JsonReader(const nlohmann::ordered_json& j, std::string source, std::string path = "");

  // Required fields. Throw Error(kInvalidInput) when missing or of the wrong type.
  std::string str(std::string_view key) const;
  double num(std::string_view key) const;
  uint64_t count(std::string_view key) const;  // a non-negative integer
  bool flag(std::string_view key) const;
  JsonReader object(std::string_view key) const;
  std::vector<JsonReader> array(std::string_view key) const;
  std::vector<std::string> strings(std::string_view key) const;

  // Optional fields: nullopt when missing or null.
  std::optional<std::string> opt_str(std::string_view key) const;
  std::optional<double> opt_num(std::string_view key) const;
  std::optional<bool> opt_flag(std::string_view key) const;
  bool has(std::string_view key) const;

  const nlohmann::ordered_json& json() const { return j_; }
  // This value itself as a number / string (for array items).
  double as_num() const;
  std::string as_str() const;
  [[noreturn]] void fail(std::string_view key, std::string_view what) const;

 private:
  const nlohmann::ordered_json& at(std::string_view key) const;
  std::string where(std::string_view key) const;

  const nlohmann::ordered_json& j_;
  std::string source_, path_;
};

}  // namespace quantlab::eval
