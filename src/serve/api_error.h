// An error the OpenAI-compatible API returns to its client: an HTTP status and OpenAI's error object
// {"error": {"message", "type", "param", "code"}}, with `param` naming the request field at fault
// ("messages[2].role"), as OpenAI's own API and vLLM do.
#pragma once

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

namespace quantlab::serve {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string type, std::string param, std::string message, std::string code = "")
      : std::runtime_error(message), status_(status), type_(std::move(type)), param_(std::move(param)),
        code_(std::move(code)) {}

  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::string& param() const { return param_; }

  nlohmann::ordered_json to_json() const {
    nlohmann::ordered_json error = {{"message", what()}, {"type", type_}};
    error["param"] = param_.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(param_);
    error["code"] = code_.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(code_);
    return {{"error", error}};
  }

 private:
  int status_;
  std::string type_, param_, code_;
};

// A 400 invalid_request_error about one field.
template <typename... Args>
[[noreturn]] void bad_field(const std::string& field, fmt::format_string<Args...> format, Args&&... args) {
  throw ApiError(400, "invalid_request_error", field, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace quantlab::serve
