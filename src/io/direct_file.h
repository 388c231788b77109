// Writes one file past the page cache (O_DIRECT), for outputs that are written once and not read back
// soon (quantize's output). Callers place bytes at any offset, in any order, from any thread; they are
// copied into 1 MiB blocks aligned as O_DIRECT requires, and each block goes to the file in one write
// by a writer thread once all its bytes have arrived. Every byte of [0, size) must be written exactly
// once (safetensors files are: header, then tensors back to back); finish() checks it.
//
// Why (docs/BENCHMARKS.md, "What bounds the quantizer"): through the page cache every output byte is
// copied by the kernel into freshly allocated cache pages, 36 % of the quantizer's cycles on the Zen 4
// VM (whose host hands cold guest pages back slowly), from ~35 KB pwrite calls serialized under a lock;
// here the copy is into reused, warm blocks and the writes are 1 MiB DMA transfers off the compute
// threads. Several writer threads keep several blocks in flight: one synchronous write at a time
// left the virtio disk of the development VM at 1.8 GB/s, two at once reach 2.4 GB/s, and a 6-bit
// quantize of a bfloat16 model writes 0.4 bytes per byte it reads.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace quantlab::io {

class DirectFile {
 public:
  static constexpr uint64_t kBlock = 1 << 20;  // bytes per write; a multiple of every device block size

  // Creates (truncates) `path` sized `size` bytes, opened with O_DIRECT. Returns null when the file
  // system refuses O_DIRECT (tmpfs, some network file systems): the caller writes through the cache.
  // Throws Error(kIo) naming the path when it cannot be created at all.
  static std::unique_ptr<DirectFile> create(const std::string& path, uint64_t size);
  ~DirectFile();  // stops the writer threads; an unfinished file is left as it is (callers remove it)
  DirectFile(const DirectFile&) = delete;
  DirectFile& operator=(const DirectFile&) = delete;

  // Thread-safe. Bytes [offset, offset + data.size()) of the file. Throws Error(kIo) naming the path
  // when an earlier block's write failed.
  void write(uint64_t offset, std::span<const uint8_t> data);
  // Waits for every block to be written, checks that all were complete, sets the file to its exact
  // size and closes it. Throws Error(kIo) naming the path.
  void finish();

 private:
  struct Block {
    uint8_t* bytes = nullptr;
    uint64_t filled = 0;
  };
  struct FreeBytes {
    void operator()(uint8_t* p) const;
  };

  DirectFile(std::string path, int fd, uint64_t size);
  uint64_t block_length(uint64_t index) const;
  uint8_t* take_buffer();  // under mutex_
  void write_blocks();     // a writer thread
  void fail_if_broken();   // under mutex_

  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  std::mutex mutex_;
  std::condition_variable work_;   // the writer waits for ready blocks
  std::condition_variable space_;  // producers wait while too many blocks are queued
  std::map<uint64_t, Block> pending_;             // partly filled, by block index
  std::deque<std::pair<uint64_t, uint8_t*>> ready_;  // complete, in completion order
  std::vector<uint8_t*> spare_;                   // written blocks' buffers, reused
  std::vector<std::unique_ptr<uint8_t, FreeBytes>> owned_;  // every buffer ever allocated
  int writing_ = 0;  // blocks being written now
  bool stop_ = false;
  std::string error_;  // the first failed write, as its message
  std::vector<std::thread> writers_;
};

}  // namespace quantlab::io
