#include "io/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/input_guard.h"
#include "core/interrupt.h"
#include "io/direct_file.h"

namespace quantlab::io {

namespace fs = std::filesystem;

uint64_t TensorSpec::nbytes() const {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

namespace {

std::vector<size_t> assign_shards(const std::vector<TensorSpec>& specs, uint64_t max_shard_bytes,
                                  size_t* num_shards) {
  std::vector<size_t> shard_of(specs.size());
  size_t shard = 0;
  uint64_t filled = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const uint64_t n = specs[i].nbytes();
    if (filled > 0 && filled + n > max_shard_bytes) {
      ++shard;
      filled = 0;
    }
    shard_of[i] = shard;
    filled += n;
  }
  *num_shards = specs.empty() ? 1 : shard + 1;
  return shard_of;
}

std::string shard_name(size_t i, size_t n) {
  return n == 1 ? "model.safetensors" : fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, n);
}

void pwrite_all(int fd, const uint8_t* data, uint64_t n, uint64_t offset, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, data, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      // EFAULT: the bytes came straight from a mapped input that shrank since it was opened — name the
      // input, not this output (core/input_guard.h).
      if (errno == EFAULT) verify_inputs_unchanged();
      fail(ErrorKind::kIo, "{}: write failed: {}", path, std::strerror(errno));
    }
    data += w;
    n -= static_cast<uint64_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

}  // namespace

SafetensorsWriter::SafetensorsWriter(std::string dir, std::vector<TensorSpec> specs,
                                     uint64_t max_shard_bytes,
                                     std::map<std::string, std::string> metadata, WriteMode mode)
    : dir_(std::move(dir)) {
  size_t num_shards = 0;
  const auto shard_of = assign_shards(specs, max_shard_bytes, &num_shards);
  for (size_t i = 0; i < num_shards; ++i) shard_names_.push_back(shard_name(i, num_shards));
  open_shards(specs, shard_of, metadata, mode);
}

void SafetensorsWriter::open_shards(const std::vector<TensorSpec>& specs,
                                    const std::vector<size_t>& shard_of,
                                    const std::map<std::string, std::string>& metadata, WriteMode mode) {
  for (size_t s = 0; s < shard_names_.size(); ++s) {
    nlohmann::json header = nlohmann::json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    uint64_t offset = 0;
    std::vector<size_t> members;
    for (size_t i = 0; i < specs.size(); ++i) {
      if (shard_of[i] != s) continue;
      const uint64_t n = specs[i].nbytes();
      header[specs[i].name] = {{"dtype", dtype_name(specs[i].dtype)},
                               {"shape", specs[i].shape},
                               {"data_offsets", {offset, offset + n}}};
      members.push_back(i);
      offset += n;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned, as safetensors pads
    const uint64_t data_start = 8 + text.size();
    uint64_t relative = 0;
    for (size_t i : members) {
      const uint64_t n = specs[i].nbytes();
      if (!placements_.emplace(specs[i].name, Placement{s, data_start + relative, n, 0}).second)
        fail(ErrorKind::kInternal, "tensor '{}' is planned twice", specs[i].name);
      relative += n;
      total_tensor_bytes_ += n;
    }
    const std::string path = (fs::path(dir_) / shard_names_[s]).string();
    direct_.push_back(mode == WriteMode::kDirect ? DirectFile::create(path, data_start + relative) : nullptr);
    if (direct_.back()) {
      fds_.push_back(-1);
    } else {
      const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) fail(ErrorKind::kIo, "{}: cannot create: {}", path, std::strerror(errno));
      fds_.push_back(fd);
      if (::ftruncate(fd, static_cast<off_t>(data_start + relative)) != 0)
        fail(ErrorKind::kIo, "{}: cannot size the file: {}", path, std::strerror(errno));
    }
    uint8_t len[8];
    for (int b = 0; b < 8; ++b) len[b] = static_cast<uint8_t>(text.size() >> (8 * b));
    write_bytes(s, 0, len);
    write_bytes(s, 8, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  }
}

void SafetensorsWriter::write_bytes(size_t shard, uint64_t offset, std::span<const uint8_t> data) {
  if (direct_[shard]) return direct_[shard]->write(offset, data);
  // One writer at a time: concurrent pwrites to one file contend on the kernel's inode lock, which
  // spins (perf showed a third of the quantizer's CPU in rwsem_spin_on_owner); a sleeping mutex lets
  // the other threads keep computing instead.
  std::lock_guard io_lock(io_mutex_);
  pwrite_all(fds_[shard], data.data(), data.size(), offset, (fs::path(dir_) / shard_names_[shard]).string());
}

SafetensorsWriter::~SafetensorsWriter() {
  for (int fd : fds_)
    if (fd >= 0) ::close(fd);
}

void SafetensorsWriter::write(std::string_view name, std::span<const uint8_t> data) {
  write_range(name, 0, data);
}

void SafetensorsWriter::write_range(std::string_view name, uint64_t offset,
                                    std::span<const uint8_t> data) {
  Placement* p;
  {
    std::lock_guard lock(mutex_);
    auto it = placements_.find(name);
    QL_CHECK(it != placements_.end(), "tensor '{}' was not planned", name);
    p = &it->second;
    QL_CHECK(offset + data.size() <= p->nbytes && p->written + data.size() <= p->nbytes,
             "tensor '{}': write of {} bytes at {} exceeds its {} bytes", name, data.size(), offset,
             p->nbytes);
    p->written += data.size();
  }
  write_bytes(p->shard, p->offset + offset, data);
  stop_point("tensor");  // the kill tests' hook (core/interrupt.h); nothing without its variable
}

void SafetensorsWriter::finish(uint64_t total_parameters) {
  QL_CHECK(!finished_);
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (const auto& [name, p] : placements_) {  // std::map: sorted by key, as mlx-lm writes it
    QL_CHECK(p.written == p.nbytes, "tensor '{}': {} of {} bytes written", name, p.written, p.nbytes);
    weight_map[name] = shard_names_[p.shard];
  }
  for (size_t s = 0; s < fds_.size(); ++s) {
    if (direct_[s]) {
      direct_[s]->finish();
      direct_[s].reset();
      continue;
    }
    if (::close(fds_[s]) != 0)
      fail(ErrorKind::kIo, "{}: close failed: {}", shard_names_[s], std::strerror(errno));
    fds_[s] = -1;
  }
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", total_tensor_bytes_}, {"total_parameters", total_parameters}};
  index["weight_map"] = std::move(weight_map);
  const std::string path = (fs::path(dir_) / "model.safetensors.index.json").string();
  std::ofstream out(path);
  out << index.dump(4) << "\n";
  if (!out) fail(ErrorKind::kIo, "{}: write failed", path);
  finished_ = true;
}

namespace {

// Removes the staging directory however the write ends.
struct StagingDir {
  std::filesystem::path path;
  ~StagingDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace

void write_safetensors_file(const std::string& path, const std::vector<TensorData>& tensors,
                            const std::map<std::string, std::string>& metadata) {
  namespace fs = std::filesystem;
  const fs::path out(path);
  const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  if (!fs::is_directory(parent)) fail(ErrorKind::kIo, "{}: directory does not exist", parent.string());
  StagingDir staging{parent / fmt::format(".{}.tmp-{}", out.filename().string(), getpid())};
  fs::create_directories(staging.path);
  std::vector<TensorSpec> specs;
  for (const auto& t : tensors) specs.push_back(t.spec);
  SafetensorsWriter writer(staging.path.string(), specs, kDefaultMaxShardBytes, metadata);
  for (const auto& t : tensors) writer.write(t.spec.name, t.bytes);
  writer.finish(0);
  std::error_code ec;
  fs::rename(staging.path / "model.safetensors", out, ec);
  if (ec) fail(ErrorKind::kIo, "{}: cannot write: {}", path, ec.message());
}

}  // namespace quantlab::io

