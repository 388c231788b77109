#include "analysis/affine_rows.h"

#include <algorithm>

#include "quant/convert.h"
#include "quant/quantizer.h"

namespace quantlab::analysis {

namespace {

AffineRows sized_rows(size_t rows, size_t cols, int bits, int group_size) {
  AffineRows out{rows, cols, bits, group_size, {}, {}, {}};
  out.packed.resize(rows * out.words_per_row());
  out.scales.resize(rows * out.groups_per_row());
  out.biases.resize(rows * out.groups_per_row());
  return out;
}

}  // namespace

kernels::MatrixView AffineRows::view() const {
  return kernels::affine_f32_view(rows, cols, bits, group_size, packed.data(), scales.data(), biases.data());
}

AffineRows round_affine_rows(const float* w, size_t rows, size_t cols, int bits, int group_size, DType dtype,
                             const quant::GptqFactor* factor, ThreadPool& pool) {
  AffineRows out = sized_rows(rows, cols, bits, group_size);
  const size_t words = out.words_per_row(), groups = out.groups_per_row();
  if (factor == nullptr) {
    kernels::affine_quantize(w, rows, cols, bits, group_size, out.packed.data(), out.scales.data(), out.biases.data());
    quant::round_to_dtype(out.scales.data(), out.scales.size(), dtype);
    quant::round_to_dtype(out.biases.data(), out.biases.size(), dtype);
    return out;
  }
  const std::vector<quant::RowRange> chunks =
      quant::split_rows(static_cast<int64_t>(rows), static_cast<int64_t>(cols), quant::kGptqRowChunkElements);
  std::vector<quant::GptqScratch> scratch(pool.size());
  pool.parallel_for(chunks.size(), 1, [&](size_t begin, size_t end, size_t worker) {
    for (size_t i = begin; i < end; ++i) {
      const size_t r0 = static_cast<size_t>(chunks[i].begin), n = static_cast<size_t>(chunks[i].end) - r0;
      quant::gptq_quantize_rows(*factor, w + r0 * cols, n, bits, group_size, dtype, out.packed.data() + r0 * words,
                                out.scales.data() + r0 * groups, out.biases.data() + r0 * groups, scratch[worker]);
    }
  });
  return out;
}

AffineRows round_affine_source(size_t rows, size_t cols, int bits, int group_size, DType dtype,
                               const quant::GptqFactor* factor, const RowReader& read, ThreadPool& pool) {
  AffineRows out = sized_rows(rows, cols, bits, group_size);
  const size_t words = out.words_per_row(), groups = out.groups_per_row();
  const std::vector<quant::RowRange> chunks =
      quant::split_rows(static_cast<int64_t>(rows), static_cast<int64_t>(cols), quant::kGptqRowChunkElements);
  const size_t chunks_per_span = 2 * pool.size();
  std::vector<float> w;
  for (size_t c = 0; c < chunks.size(); c += chunks_per_span) {
    const size_t first = static_cast<size_t>(chunks[c].begin);
    const size_t last = static_cast<size_t>(chunks[std::min(chunks.size(), c + chunks_per_span) - 1].end);
    read(first, last, w);
    const AffineRows span = round_affine_rows(w.data(), last - first, cols, bits, group_size, dtype, factor, pool);
    std::copy(span.packed.begin(), span.packed.end(), out.packed.begin() + static_cast<std::ptrdiff_t>(first * words));
    std::copy(span.scales.begin(), span.scales.end(), out.scales.begin() + static_cast<std::ptrdiff_t>(first * groups));
    std::copy(span.biases.begin(), span.biases.end(), out.biases.begin() + static_cast<std::ptrdiff_t>(first * groups));
  }
  return out;
}

}  // namespace quantlab::analysis
