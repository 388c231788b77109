// safetensors reading: one file (SafetensorsFile) or a whole model directory, single or sharded
// (ModelWeights). Every header is validated before any pointer is handed out: header length, JSON,
// dtype, shape x dtype size == byte span, spans inside the file and not overlapping. Tensor bytes are
// read in place from the memory map (no copy); they are not aligned in general.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"

namespace quantlab::io {

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // absolute byte offset in the file
  uint64_t nbytes = 0;

  int64_t numel() const;
  std::string shape_string() const;  // "[4, 128]"
};

// How often this process has parsed config.json files and safetensors headers: the chat layer opens a
// model directory once, and a test holds it to that (a bench worker reads each exactly once).
struct ReadCounters {
  uint64_t config_files = 0;
  uint64_t safetensors_headers = 0;
};
ReadCounters read_counters();
void count_config_read();

// A buffer aligned for O_DIRECT reads (4 KiB), kept by one reader across reads.
class DirectBuffer {
 public:
  static constexpr uint64_t kAlignment = 4096;
  uint8_t* reserve(size_t bytes);  // at least `bytes`, aligned; earlier contents are not kept

 private:
  std::unique_ptr<uint8_t, void (*)(void*)> data_{nullptr, std::free};
  size_t capacity_ = 0;
};

class SafetensorsFile {
 public:
  // Opens, maps and validates. Throws Error(kInvalidInput) naming the file (and tensor) when the
  // file is not a valid safetensors file; Error(kIo) when it cannot be read.
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return file_.path(); }
  // Tensors in ascending offset order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(std::string_view name) const;
  // Throws naming the file and tensor when absent.
  const TensorInfo& at(std::string_view name) const;
  std::span<const uint8_t> bytes(const TensorInfo& t) const;
  // Copies bytes [offset, offset+n) of tensor t into dst with pread: streaming readers use this
  // instead of the map so that the pages they pass over never count towards the process's RSS.
  // Thread-safe.
  void read(const TensorInfo& t, uint64_t offset, uint64_t n, void* dst) const;
  // Reads bytes [offset, offset+n) of tensor t like read(), but past the page cache (O_DIRECT) where the
  // file system allows it, into `buffer`; returns where the n bytes start in it. For one pass over a
  // checkpoint larger than memory, whose pages would be copied once and then reclaimed (the kernel's
  // copy was 28 % of the cycles of a cold 28.7 GB quantize). Falls back to pread where O_DIRECT is
  // refused (tmpfs). Thread-safe.
  const uint8_t* read_uncached(const TensorInfo& t, uint64_t offset, uint64_t n, DirectBuffer& buffer) const;
  // The "__metadata__" string map (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const MappedFile& mapped() const { return file_; }
  uint64_t file_size() const { return file_.size(); }

 private:
  void parse_header();
  int direct_fd() const;
  MappedFile file_;
  int fd_ = -1;
  mutable std::once_flag direct_once_;
  mutable int direct_fd_ = -1;  // O_DIRECT descriptor, opened on first use; -1 where refused
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

// All weight files of a model directory. Resolution order, as mlx-lm and transformers do:
// `model.safetensors.index.json` when present (its weight_map must name existing files, and every
// tensor it lists must be in that file); else every `model*.safetensors`; else every `*.safetensors`.
class ModelWeights {
 public:
  struct Entry {
    const SafetensorsFile* file = nullptr;
    const TensorInfo* info = nullptr;
  };

  static ModelWeights open(const std::string& dir);
  // A single file (tests, adapters).
  static ModelWeights open_file(const std::string& path);

  const std::string& dir() const { return dir_; }
  const Entry* find(std::string_view name) const;
  const Entry& at(std::string_view name) const;
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  std::span<const uint8_t> bytes(const Entry& e) const { return e.file->bytes(*e.info); }
  std::span<const uint8_t> bytes(std::string_view name) const { return bytes(at(name)); }
  // Tensor names, sorted.
  std::vector<std::string> names() const;
  size_t size() const { return entries_.size(); }
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  // Sum of the weight files' sizes on disk.
  uint64_t disk_bytes() const;

 private:
  void add_file(std::unique_ptr<SafetensorsFile> file);
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace quantlab::io
