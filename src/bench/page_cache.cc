#include "bench/page_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>

namespace quantlab::bench {

namespace {

// Closes a file descriptor on scope exit.
struct Fd {
  int fd = -1;
  explicit Fd(const std::string& path) : fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

uint64_t file_size(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

}  // namespace

std::vector<std::string> model_files(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec))
    if (entry.is_regular_file(ec)) files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

CacheState page_cache_state(const std::vector<std::string>& files) {
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  CacheState s;
  for (const std::string& path : files) {
    Fd f(path);
    const uint64_t size = f.fd >= 0 ? file_size(f.fd) : 0;
    if (size == 0) continue;
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, f.fd, 0);
    if (map == MAP_FAILED) continue;
    const uint64_t pages = (size + page - 1) / page;
    std::vector<unsigned char> vec(pages);
    if (::mincore(map, size, vec.data()) == 0) {
      s.pages += pages;
      s.resident += static_cast<uint64_t>(std::count_if(vec.begin(), vec.end(), [](unsigned char v) { return v & 1; }));
    }
    ::munmap(map, size);
  }
  return s;
}

bool drop_page_cache(const std::vector<std::string>& files) {
  bool ok = true;
  for (const std::string& path : files) {
    Fd f(path);
    if (f.fd < 0) {
      ok = false;
      continue;
    }
    // Dirty pages (a model just written by quantize) cannot be dropped until they reach the disk.
    ::fdatasync(f.fd);
    ok = ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_DONTNEED) == 0 && ok;
  }
  return ok;
}

void warm_page_cache(const std::vector<std::string>& files) {
  constexpr size_t kChunk = size_t{1} << 20;
  std::unique_ptr<char[]> buffer(new char[kChunk]);
  for (const std::string& path : files) {
    Fd f(path);
    if (f.fd < 0) continue;
    ::posix_fadvise(f.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    while (::read(f.fd, buffer.get(), kChunk) > 0) {
    }
  }
}

std::string cache_state_label(double resident_fraction) {
  if (resident_fraction >= 0.99) return "warm";
  if (resident_fraction <= 0.01) return "cold";
  return "partial";
}

}  // namespace quantlab::bench
