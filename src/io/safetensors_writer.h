// Streaming safetensors writer: the layout of every shard (which tensor goes where) is fixed up
// front from the tensor specs, headers are written first, then tensor bytes are placed with pwrite at
// their offsets in any order and from any thread. Memory use is independent of the model size.
// Shards follow mlx-lm: greedy in the given order, a new shard when the next tensor would pass the
// limit; names model.safetensors or model-0000i-of-0000N.safetensors; an index is always written.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace quantlab::io {

struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t nbytes() const;
};

constexpr uint64_t kDefaultMaxShardBytes = 5ull << 30;  // mlx-lm's MAX_FILE_SIZE_GB = 5

class DirectFile;

// kCached: pwrite through the page cache. kDirect: past it (io/direct_file.h), where the file system
// allows O_DIRECT (else cached); the bytes handed to write/write_range are copied, so a mapped input
// that shrinks under the copy is a bus error there (core/interrupt.h), not EFAULT.
enum class WriteMode { kCached, kDirect };

class SafetensorsWriter {
 public:
  SafetensorsWriter(std::string dir, std::vector<TensorSpec> specs, uint64_t max_shard_bytes,
                    std::map<std::string, std::string> metadata = {{"format", "mlx"}},
                    WriteMode mode = WriteMode::kCached);
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Thread-safe. `data` must be exactly the tensor's size; each tensor is written once.
  void write(std::string_view name, std::span<const uint8_t> data);
  // Thread-safe. Writes bytes [offset, offset + data.size()) of a tensor; the ranges written for one
  // tensor must add up to its size exactly (checked by finish()).
  void write_range(std::string_view name, uint64_t offset, std::span<const uint8_t> data);
  // Checks every tensor was written, closes the shards and writes model.safetensors.index.json
  // (total_size = tensor bytes; total_parameters as given by the caller).
  void finish(uint64_t total_parameters);

  const std::vector<std::string>& shard_names() const { return shard_names_; }
  uint64_t total_tensor_bytes() const { return total_tensor_bytes_; }

 private:
  struct Placement {
    size_t shard;
    uint64_t offset;  // absolute, in the shard file
    uint64_t nbytes;
    uint64_t written = 0;  // bytes
  };
  void open_shards(const std::vector<TensorSpec>& specs, const std::vector<size_t>& shard_of,
                   const std::map<std::string, std::string>& metadata, WriteMode mode);
  void write_bytes(size_t shard, uint64_t offset, std::span<const uint8_t> data);
  std::string dir_;
  std::vector<std::string> shard_names_;
  std::vector<int> fds_;                              // -1 for a shard written past the cache
  std::vector<std::unique_ptr<DirectFile>> direct_;   // per shard: set when written past the cache
  std::map<std::string, Placement, std::less<>> placements_;
  uint64_t total_tensor_bytes_ = 0;
  std::mutex mutex_;     // guards placements_
  std::mutex io_mutex_;  // serializes pwrite calls
  bool finished_ = false;
};

// One tensor and its bytes, for write_safetensors_file.
struct TensorData {
  TensorSpec spec;
  std::span<const uint8_t> bytes;
};

// Writes one .safetensors file at `path` (not a model directory: no index, no sharding) that appears
// only when complete: staged in a hidden directory beside it, then renamed into place. Throws
// Error(kIo) naming the path when its directory does not exist or the write fails.
void write_safetensors_file(const std::string& path, const std::vector<TensorData>& tensors,
                            const std::map<std::string, std::string>& metadata);

}  // namespace quantlab::io
