// Streaming conversion of a float checkpoint into an MLX affine-quantized one.
// Work is cut into jobs of a few rows of one source tensor; each job reads its bytes with pread,
// converts them, quantizes them and writes the packed codes, scales and biases at their final offsets.
// Peak memory is a few MB per thread, independent of the model size; jobs run on all threads and
// the output bytes are identical for any thread count (each job owns its byte ranges).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "io/model_config.h"
#include "io/safetensors_writer.h"
#include "quant/plan.h"
#include "quant/rounding.h"

namespace quantlab::quant {

enum class KernelPath { kSimd, kScalarReference };

struct QuantizeOptions {
  PlanOptions plan;
  uint64_t max_shard_bytes = io::kDefaultMaxShardBytes;
  bool overwrite = false;
  bool show_progress = true;
  // The scalar reference path is the yardstick for benchmarks and a cross-check in tests.
  KernelPath kernel = KernelPath::kSimd;
  // Write OUT/quantlab_plan.json (quant/plan_file.h): the per-module plan the files were made with.
  bool write_plan_file = false;
  // What that file holds when set (an allocation's plan with its prediction); else the plan as made.
  nlohmann::ordered_json plan_record;
  // How codes are chosen (quant/rounding.h); rtn, MLX's rule, by default. Other methods always write
  // quantlab_plan.json, and record the method there and in the safetensors metadata.
  RoundingOptions rounding;
  // Read the checkpoint past the page cache (O_DIRECT where the file system allows it). Unset: when it
  // is larger than half the physical memory, so that a single pass over a checkpoint larger than RAM
  // does not spend its time copying pages into a cache that cannot keep them; smaller ones are read
  // through the cache (a warm cache is the fast case, and sweeps read the same input again).
  std::optional<bool> uncached_reads;
  // Write the output past the page cache (io/direct_file.h; O_DIRECT where the file system allows it).
  // Unset: always — the output is written once and not read back by the quantizer, and through the
  // cache its copy cost up to a third of the cycles (docs/BENCHMARKS.md, "What bounds the quantizer").
  std::optional<bool> uncached_writes;
};

struct QuantizeReport {
  QuantPlan plan;
  uint64_t input_bytes = 0;   // bytes of source tensors read
  uint64_t output_bytes = 0;  // bytes of tensors written
  double seconds = 0;
  std::vector<std::string> shards;
  size_t gptq_tensors = 0;  // tensors rounded with GPTQ (the others to nearest)
  size_t gptq_factorisations = 0;  // distinct factors: modules reading the same input share one
};

// Quantizes in_dir into out_dir (created atomically; nothing is left behind on failure).
QuantizeReport quantize_model(const std::string& in_dir, const std::string& out_dir,
                              const QuantizeOptions& options, ThreadPool& pool);

// Rows [begin, end) of a tensor.
struct RowRange {
  int64_t begin, end;
};

// Writes rows [rows.begin, rows.end) of source tensor `name` (`cols` values each) as float32 values that
// are already what the source dtype holds (a bfloat16 checkpoint's values rounded to bfloat16).
using SourceRowFill = std::function<void(const std::string& name, RowRange rows, int64_t cols, float* out)>;

// A checkpoint that exists only as a generator (synth --bits): quantized as it is generated, so the
// float checkpoint is never written (a 48-layer Qwen3-30B-A3B is 61 GB in bfloat16, 17 GB at 4 bits).
struct GeneratedModel {
  io::ModelConfig config;
  std::vector<SourceTensor> sources;
  SourceRowFill fill;
  std::map<std::string, std::string> side_files;  // written beside the weights (generation_config.json)
};

// quantize_model for a generated checkpoint: the same plan, jobs and bytes as writing the float
// checkpoint and quantizing it (round to nearest only: Error(kUsage) for calibrated methods).
QuantizeReport quantize_generated(const GeneratedModel& model, const std::string& out_dir,
                                  const QuantizeOptions& options, ThreadPool& pool);

// Copies the files of a model directory that are not weights or config.json (tokenizer files,
// generation_config.json, chat templates, ...) into out_dir.
void copy_side_files(const std::string& in_dir, const std::string& out_dir);

// Splits `rows` rows of `cols` values into jobs of about `target_elems` values each.
std::vector<RowRange> split_rows(int64_t rows, int64_t cols, int64_t target_elems);

}  // namespace quantlab::quant
