// Errors for untrusted input (files, flags) and the exit codes the CLI maps them to.
// Library code throws quantlab::Error with a message that names the file, tensor or line; only the CLI
// decides to exit. Internal invariants use QL_CHECK (always on, cheap, at API boundaries).
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace quantlab {

// Exit codes are part of the CLI contract (docs/cli.md).
enum class ErrorKind : int {
  kInternal = 1,     // a bug: an invariant did not hold
  kUsage = 2,        // bad flags or arguments
  kInvalidInput = 3, // malformed or inconsistent input files (safetensors, config, JSON, adapters)
  kUnsupported = 4,  // well-formed input that quantlab does not handle (architecture, dtype, bits)
  kIo = 5,           // the operating system refused: missing file, permission, disk full
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string message) : std::runtime_error(std::move(message)), kind_(kind) {}
  ErrorKind kind() const { return kind_; }
  int exit_code() const { return static_cast<int>(kind_); }

 private:
  ErrorKind kind_;
};

template <typename... Args>
[[noreturn]] void fail(ErrorKind kind, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(kind, fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void fail_input(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(ErrorKind::kInvalidInput, fmt::format(format, std::forward<Args>(args)...));
}

[[noreturn]] void fail_check(const char* expr, const char* file, int line, const std::string& what);

}  // namespace quantlab

#define QL_CHECK(cond, ...)                                                                  \
  do {                                                                                       \
    if (!(cond)) ::quantlab::fail_check(#cond, __FILE__, __LINE__, ::fmt::format("" __VA_ARGS__)); \
  } while (0)
