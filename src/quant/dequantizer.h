// MLX-quantized checkpoint -> Hugging Face float layout (experts unstacked to per-expert tensors,
// quantization removed from config.json), loadable by transformers. Streams like the quantizer.
#pragma once

#include <optional>
#include <string>

#include "core/dtype.h"
#include "core/thread_pool.h"

namespace quantlab::quant {

struct DequantizeOptions {
  std::optional<DType> dtype;  // default: each module's scales dtype
  bool overwrite = false;
  bool show_progress = true;
  uint64_t max_shard_bytes = 5ull << 30;
};

struct DequantizeReport {
  size_t modules = 0;
  uint64_t output_bytes = 0;
  double seconds = 0;
};

DequantizeReport dequantize_model(const std::string& in_dir, const std::string& out_dir,
                                  const DequantizeOptions& options, ThreadPool& pool);

}  // namespace quantlab::quant
