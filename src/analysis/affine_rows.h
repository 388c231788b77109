// Rows of one matrix rounded into MLX's affine layout exactly as `quantize` rounds them: round-to-nearest
// by the MLX-exact kernel, or GPTQ/delta through a factor in the quantizer's row chunks
// (quant::kGptqRowChunkElements), scales and biases rounded to the stored dtype. On the same weights,
// statistics and dtype the codes are the file's codes; analysis code rounds in memory with it (the
// sensitivity's candidates, the module probe, layer-streamed calibration).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "quant/gptq.h"

namespace quantlab::analysis {

struct AffineRows {
  size_t rows = 0, cols = 0;
  int bits = 0, group_size = 0;
  std::vector<uint32_t> packed;        // [rows, cols·bits/32]
  std::vector<float> scales, biases;   // [rows, cols/group], values exact in the stored dtype

  size_t words_per_row() const { return cols * static_cast<size_t>(bits) / 32; }
  size_t groups_per_row() const { return cols / static_cast<size_t>(group_size); }
  // A view the engine's quantized kernels read (valid while this object lives and is not resized).
  kernels::MatrixView view() const;
};

// w: [rows, cols] row-major, already rounded to the stored dtype. factor null: round-to-nearest.
AffineRows round_affine_rows(const float* w, size_t rows, size_t cols, int bits, int group_size, DType dtype,
                             const quant::GptqFactor* factor, ThreadPool& pool);

// Rows [first, last) of a source as float32, already rounded to the stored dtype.
using RowReader = std::function<void(size_t first, size_t last, std::vector<float>& out)>;
// The same rounding of a whole source read in spans of whole GPTQ chunks (so the codes are those of
// round_affine_rows on all rows at once), holding a few chunks of float32 rather than the whole source
// (an embedding table is a gigabyte of float32).
AffineRows round_affine_source(size_t rows, size_t cols, int bits, int group_size, DType dtype,
                               const quant::GptqFactor* factor, const RowReader& read, ThreadPool& pool);

}  // namespace quantlab::analysis
