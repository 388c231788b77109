#include "io/direct_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace quantlab::io {

namespace {

// Blocks waiting for the writers, at most (8 MiB): producers that outrun the disk wait here. Few, so
// that the buffers cycle while still in cache (64 cost ~100 MB of RSS and no speed).
constexpr size_t kMaxReady = 8;
// Writes in flight at once (writer threads): the disk's queue depth.
constexpr int kWriters = 3;
// Alignment of the buffers (O_DIRECT needs the device's logical block size; 4 KiB covers every disk).
constexpr size_t kAlign = 4096;

}  // namespace

void DirectFile::FreeBytes::operator()(uint8_t* p) const { std::free(p); }

std::unique_ptr<DirectFile> DirectFile::create(const std::string& path, uint64_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0644);
  if (fd < 0) {
    if (errno == EINVAL) return nullptr;  // no O_DIRECT on this file system
    fail(ErrorKind::kIo, "{}: cannot create: {}", path, std::strerror(errno));
  }
  return std::unique_ptr<DirectFile>(new DirectFile(path, fd, size));
}

DirectFile::DirectFile(std::string path, int fd, uint64_t size) : path_(std::move(path)), fd_(fd), size_(size) {
  for (int i = 0; i < kWriters; ++i) writers_.emplace_back([this] { write_blocks(); });
}

DirectFile::~DirectFile() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  work_.notify_all();
  space_.notify_all();
  for (std::thread& w : writers_)
    if (w.joinable()) w.join();
  if (fd_ >= 0) ::close(fd_);
}

uint64_t DirectFile::block_length(uint64_t index) const { return std::min(kBlock, size_ - index * kBlock); }

uint8_t* DirectFile::take_buffer() {
  if (!spare_.empty()) {
    uint8_t* p = spare_.back();
    spare_.pop_back();
    return p;
  }
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(kAlign, kBlock));
  if (!p) fail(ErrorKind::kIo, "{}: out of memory for a write buffer", path_);
  owned_.emplace_back(p);
  return p;
}

void DirectFile::fail_if_broken() {
  if (!error_.empty()) fail(ErrorKind::kIo, "{}", error_);
}

void DirectFile::write(uint64_t offset, std::span<const uint8_t> data) {
  QL_CHECK(offset + data.size() <= size_, "{}: write of {} bytes at {} past the file's {} bytes", path_, data.size(),
           offset, size_);
  while (!data.empty()) {
    const uint64_t index = offset / kBlock, within = offset % kBlock;
    const uint64_t n = std::min<uint64_t>(data.size(), block_length(index) - within);
    uint8_t* bytes;
    {
      std::unique_lock lock(mutex_);
      fail_if_broken();
      Block& block = pending_[index];
      if (!block.bytes) block.bytes = take_buffer();
      bytes = block.bytes;
    }
    // Outside the lock: threads fill disjoint ranges of a block at once. The block stays pending until
    // its last byte is counted, so it is not queued while another copy into it is under way.
    std::memcpy(bytes + within, data.data(), n);
    {
      std::unique_lock lock(mutex_);
      Block& block = pending_[index];
      block.filled += n;
      QL_CHECK(block.filled <= block_length(index), "{}: block {} written twice", path_, index);
      if (block.filled == block_length(index)) {
        space_.wait(lock, [&] { return ready_.size() < kMaxReady || stop_ || !error_.empty(); });
        ready_.emplace_back(index, block.bytes);
        pending_.erase(index);
        work_.notify_one();
      }
    }
    data = data.subspan(n);
    offset += n;
  }
}

void DirectFile::write_blocks() {
  std::unique_lock lock(mutex_);
  for (;;) {
    work_.wait(lock, [&] { return stop_ || !ready_.empty(); });
    if (ready_.empty()) return;  // stopping, nothing left
    const auto [index, bytes] = ready_.front();
    ready_.pop_front();
    ++writing_;
    lock.unlock();
    // The last block is written whole (O_DIRECT lengths are multiples of the device block); finish()
    // cuts the file back to its size.
    const uint64_t length = (block_length(index) + kAlign - 1) / kAlign * kAlign;
    uint64_t done = 0;
    std::string failure;
    while (done < length) {
      const ssize_t w = ::pwrite(fd_, bytes + done, length - done, static_cast<off_t>(index * kBlock + done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        failure = fmt::format("{}: write failed: {}", path_, w < 0 ? std::strerror(errno) : "no progress");
        break;
      }
      done += static_cast<uint64_t>(w);
    }
    lock.lock();
    --writing_;
    spare_.push_back(bytes);
    if (!failure.empty() && error_.empty()) error_ = failure;
    space_.notify_all();
  }
}

void DirectFile::finish() {
  {
    std::unique_lock lock(mutex_);
    space_.wait(lock, [&] { return (ready_.empty() && writing_ == 0) || !error_.empty(); });
    fail_if_broken();
    QL_CHECK(pending_.empty(), "{}: {} blocks were never completed (first at byte {})", path_, pending_.size(),
             pending_.empty() ? 0 : pending_.begin()->first * kBlock);
    stop_ = true;
  }
  work_.notify_all();
  for (std::thread& w : writers_) w.join();
  if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0)
    fail(ErrorKind::kIo, "{}: cannot size the file: {}", path_, std::strerror(errno));
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail(ErrorKind::kIo, "{}: close failed: {}", path_, std::strerror(errno));
}

}  // namespace quantlab::io
