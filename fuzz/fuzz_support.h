// Shared pieces of the libFuzzer targets (docs/fuzzing.md).
//
// The contract every target checks: a parser of outside input either returns, or throws quantlab::Error
// of an input kind (invalid input, unsupported, I/O, usage). An Error of kind kInternal (a QL_CHECK that
// bad input reached), any other exception (a raw nlohmann::json or std::out_of_range message reaching
// the user) and anything the sanitizers catch are findings: the target aborts and libFuzzer keeps the
// input.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "test_support.h"

namespace quantlab::fuzz {

// Runs `body`; returns true when it returned, false when it refused the input with a proper Error.
template <typename Body>
bool parses_or_refuses(Body&& body) {
  try {
    body();
    return true;
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kInternal) {
      std::fprintf(stderr, "fuzz: internal error reached from input: %s\n", e.what());
      std::abort();
    }
    return false;
  }
}

// Aborts with `what` when `condition` is false: a property the parsed result must have.
inline void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz: property failed: %s\n", what);
    std::abort();
  }
}

// Several files in one fuzz input: parts separated by the byte 0x1E (ASCII record separator); the last
// part takes the rest, so a binary part (safetensors) goes last and may contain the byte itself.
inline std::vector<std::string_view> split_parts(const uint8_t* data, size_t size, size_t parts) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> out;
  while (out.size() + 1 < parts) {
    const size_t cut = rest.find('\x1e');
    if (cut == std::string_view::npos) break;
    out.push_back(rest.substr(0, cut));
    rest.remove_prefix(cut + 1);
  }
  out.push_back(rest);
  out.resize(parts);  // missing parts are empty
  return out;
}

// A scratch directory (tests/test_support.h's TempDir: under $TMPDIR, removed at exit), emptied per
// input. Parsers that take paths (most of quantlab's do: the file name belongs in their messages) read
// the fuzz input from here.
class ScratchDir {
 public:
  std::filesystem::path path() const { return dir_.path(); }
  std::string file(const std::string& name) const { return dir_ / name; }
  // Removes everything the previous input wrote.
  void clear() const {
    for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) std::filesystem::remove_all(entry.path());
  }
  std::string write(const std::string& name, std::string_view bytes) const {
    const std::string p = file(name);
    std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return p;
  }

 private:
  testing::TempDir dir_;
};

// One scratch directory per process, made on first use.
inline const ScratchDir& scratch() {
  static const ScratchDir dir;
  return dir;
}

// The bundled test data (tests/data), for targets that need a valid counterpart (a tokenizer, a model).
using testing::data_path;

}  // namespace quantlab::fuzz
