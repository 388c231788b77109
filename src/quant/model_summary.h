// What `inspect` reports about a model directory, float or quantized: architecture, parameter
// count, each tensor's storage, disk size and effective bits per weight (scales and biases included).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/model_config.h"
#include "io/safetensors.h"

namespace quantlab::quant {

struct TensorSummary {
  std::string name;            // module weight name, or the tensor name for float tensors
  std::string storage;         // "F16", "BF16", "affine q6 g64 (BF16 scales)", ...
  std::vector<int64_t> shape;  // logical (unpacked) shape
  int bits = 0;                // 0 for float tensors
  int group_size = 0;
  uint64_t params = 0;
  uint64_t bytes = 0;          // weight + scales + biases
};

struct ModelSummary {
  std::string dir;
  std::string architecture;  // "qwen3", ...
  std::string architecture_class;
  bool quantized = false;
  std::optional<io::ModuleQuant> global_quant;
  uint64_t params = 0;
  uint64_t quantized_params = 0;
  uint64_t tensor_bytes = 0;   // all tensor bytes = weight memory when mapped
  uint64_t disk_bytes = 0;     // weight files on disk, headers included
  uint64_t all_files_bytes = 0;  // every file of the directory
  double bits_per_weight = 0;            // tensor bytes * 8 / params
  double quantized_bits_per_weight = 0;  // over the quantized modules only
  std::vector<TensorSummary> tensors;

  nlohmann::ordered_json to_json() const;
};

ModelSummary summarize_model(const std::string& dir);
// The same for a directory already opened (its config and headers are not read again).
ModelSummary summarize_model(const std::string& dir, const io::ModelConfig& config, const io::ModelWeights& weights);

}  // namespace quantlab::quant
