#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "core/error.h"
#include "core/input_guard.h"

namespace quantlab {

namespace {
size_t page_size() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}
}  // namespace

MappedFile::MappedFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(ErrorKind::kIo, "{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail(ErrorKind::kIo, "{}: cannot stat: {}", path, std::strerror(err));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    fail(ErrorKind::kIo, "{}: is a directory, expected a file", path);
  }
  const FileIdentity identity = identity_of(st);
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail(ErrorKind::kIo, "{}: cannot map {} bytes: {}", path, size_, std::strerror(err));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
  watch_ = watch_input(path_, identity, data_, size_);
}

MappedFile::~MappedFile() { release(); }

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)), data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)), watch_(std::exchange(other.watch_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    watch_ = std::exchange(other.watch_, 0);
  }
  return *this;
}

void MappedFile::release() {
  if (watch_ != 0) unwatch_input(std::exchange(watch_, 0));  // before unmapping: the range leaves the table first
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

static void advise(const uint8_t* base, size_t size, size_t offset, size_t length, int advice) {
  if (base == nullptr || offset >= size) return;
  length = std::min(length, size - offset);
  const size_t start = offset / page_size() * page_size();
  ::madvise(const_cast<uint8_t*>(base) + start, length + (offset - start), advice);
}

void MappedFile::advise_willneed(size_t offset, size_t length) const {
  advise(data_, size_, offset, length, MADV_WILLNEED);
}
void MappedFile::advise_sequential() const { advise(data_, size_, 0, size_, MADV_SEQUENTIAL); }
void MappedFile::advise_dontneed(size_t offset, size_t length) const {
  advise(data_, size_, offset, length, MADV_DONTNEED);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kIo, "{}: cannot open: {}", path, std::strerror(errno));
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) fail(ErrorKind::kIo, "{}: read failed", path);
  return out.str();
}

}  // namespace quantlab
