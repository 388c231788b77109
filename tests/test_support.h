// Helpers shared by the test suites: fixture paths and scratch directories that clean up after
// themselves.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

namespace quantlab::testing {

inline std::string data_path(const std::string& relative) {
  return (std::filesystem::path(QUANTLAB_TEST_DATA) / relative).string();
}

// The bundled tool-calling fixtures (tests/data/tool-calling, see tests/data/README.md).
namespace tool_calling {
inline const std::string kBase = data_path("tool-calling/dense-base-f16");
inline const std::string kFused = data_path("tool-calling/dense-fused-strong-f16");
inline const std::string kAdapter = data_path("tool-calling/dense-lora-strong");
inline const std::string kSeed5 = data_path("tool-calling/queries/seed5.jsonl");
inline const std::string kDev40 = data_path("tool-calling/queries/dev40.jsonl");
inline const std::string kTools = data_path("tool-calling/tools.json");
}  // namespace tool_calling

// A fresh empty directory under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("quantlab-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace quantlab::testing

namespace quantlab::testing {
inline std::string slurp_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Bytes of a model directory's model*.safetensors files and of their headers (8-byte length prefix +
// JSON), read directly from the files, to check size predictions against.
struct WeightFiles {
  uint64_t bytes = 0, header_bytes = 0;
};
inline WeightFiles weight_files(const std::string& dir) {
  WeightFiles f;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().rfind("model", 0) != 0 || e.path().extension() != ".safetensors") continue;
    f.bytes += std::filesystem::file_size(e.path());
    std::ifstream in(e.path(), std::ios::binary);
    uint64_t n = 0;
    in.read(reinterpret_cast<char*>(&n), 8);
    f.header_bytes += 8 + n;
  }
  return f;
}
}  // namespace quantlab::testing
