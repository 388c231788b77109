// A read-only memory map of a whole file. Weights stay in the page cache and are read in place;
// nothing is copied at load time. Every mapped file is watched for changes while it is open
// (core/input_guard.h): a file truncated or replaced under the process is an I/O error, not a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace quantlab {

class MappedFile {
 public:
  // Throws Error(kIo) naming the path when the file cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;

  const std::string& path() const { return path_; }
  size_t size() const { return size_; }
  const uint8_t* data() const { return data_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }

  // Hints: the byte range will be read soon / read once in order / is no longer needed.
  void advise_willneed(size_t offset, size_t length) const;
  void advise_sequential() const;
  void advise_dontneed(size_t offset, size_t length) const;

 private:
  void release();
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  uint64_t watch_ = 0;  // input_guard handle, 0 when nothing is watched
};

// Bytes of a file, read fully (for small text files such as config.json).
std::string read_text_file(const std::string& path);

}  // namespace quantlab
