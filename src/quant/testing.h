// Helpers for the quant layer's tests only (included by *_test.cc).
#pragma once

#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "kernels/affine_reference.h"
#include "quant/convert.h"
#include "quant/quantizer.h"

namespace quantlab::quant::test_helpers {

// A stored float tensor (F32/F16/BF16) as f32 values, through the scalar reference conversion.
inline std::vector<float> load_f32(const io::ModelWeights& w, const std::string& name) {
  const auto& e = w.at(name);
  std::vector<float> out(static_cast<size_t>(e.info->numel()));
  load_as_f32_scalar(e.info->dtype, w.bytes(e).data(), out.size(), out.data());
  return out;
}

// Round-to-nearest as MLX stores it (codes from the unrounded fit, scales and biases stored in float16),
// read back: w [rows, cols] row-major.
inline std::vector<float> nearest_dequantized(const std::vector<float>& w, size_t rows, size_t cols, int bits,
                                              int group) {
  std::vector<float> out(w.size());
  std::vector<uint32_t> packed(cols * bits / 32);
  std::vector<float> scales(cols / group), biases(cols / group);
  for (size_t r = 0; r < rows; ++r) {
    kernels::quantize_row_reference(w.data() + r * cols, cols, bits, group, packed.data(), scales.data(),
                                    biases.data());
    round_to_dtype(scales.data(), scales.size(), DType::kF16);
    round_to_dtype(biases.data(), biases.size(), DType::kF16);
    kernels::dequantize_row_reference(packed.data(), scales.data(), biases.data(), cols, bits, group,
                                      out.data() + r * cols);
  }
  return out;
}

// Quantizes `in` into `out` at bits / group size (no progress bar) and returns `out`.
inline std::string quantize_for_test(const std::string& in, const std::string& out, int bits, int group = 64) {
  QuantizeOptions o;
  o.plan.bits = bits;
  o.plan.group_size = group;
  o.show_progress = false;
  ThreadPool pool(2);
  quantize_model(in, out, o, pool);
  return out;
}

}  // namespace quantlab::quant::test_helpers
