// Helpers shared by the kernel tests: running a check on every compiled Highway target, random data,
// weights in every stored format (built with the quant:: scalar reference), double-precision reference
// products, and buffers at odd byte offsets (as tensors in an mmapped safetensors file can be).
#pragma once

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/half.h"
#include "kernels/kernels.h"
#include "kernels/targets.h"
#include "kernels/affine_reference.h"

namespace quantlab::kernels::testing {

// Runs f() once per compiled target this CPU supports, with dispatch restricted to that target.
template <class F>
void for_each_target(F&& f) {
  const std::vector<int64_t> targets = compiled_targets();
  ASSERT_FALSE(targets.empty());
  for (int64_t target : targets) {
    force_target(target);
    SCOPED_TRACE(target_name(target));
    f();
    force_target(0);
  }
}

inline std::string to_string(DType dtype, size_t n) {
  return std::string(dtype_name(dtype)) + " n=" + std::to_string(n);
}

// Columns for the AVX-512 step kernels' tests (int8, bf16): whole groups, and for g32/g64 a number that
// is not a whole number of 128-code steps (at g32, nor of 64-code ones), so a masked last step runs.
inline size_t step_kernel_test_cols(int group) { return group == 32 ? 13 * 32 : group == 64 ? 7 * 64 : 3 * 128; }

inline std::vector<float> random_floats(std::mt19937& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// Values rounded to `dtype`, and their stored bytes.
inline float round_to(DType dtype, float f) {
  return dtype == DType::kF16 ? round_to_f16(f) : dtype == DType::kBF16 ? round_to_bf16(f) : f;
}

inline std::vector<uint8_t> to_storage(DType dtype, const std::vector<float>& values) {
  std::vector<uint8_t> bytes(values.size() * dtype_size(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::kF32) {
      std::memcpy(&bytes[i * 4], &values[i], 4);
    } else {
      const uint16_t h = dtype == DType::kF16 ? f32_to_f16(values[i]) : f32_to_bf16(values[i]);
      std::memcpy(&bytes[i * 2], &h, 2);
    }
  }
  return bytes;
}

// A copy of `bytes` starting `misalign` bytes past a 64-byte boundary: 1 (default) for tensors in an
// mmapped file, which may start at any byte; sizeof(float) for activations, which are float-aligned
// but not vector-aligned.
class OddBuffer {
 public:
  explicit OddBuffer(const void* data, size_t size, size_t misalign = 1) : storage_(size + 128) {
    const uintptr_t base = reinterpret_cast<uintptr_t>(storage_.data());
    offset_ = (64 - base % 64) % 64 + misalign;
    std::memcpy(storage_.data() + offset_, data, size);
  }
  template <class T>
  explicit OddBuffer(const std::vector<T>& v, size_t misalign = 1)
      : OddBuffer(v.data(), v.size() * sizeof(T), misalign) {}
  void* get() { return storage_.data() + offset_; }
  float* floats() { return static_cast<float*>(get()); }

 private:
  std::vector<uint8_t> storage_;
  size_t offset_ = 0;
};

// An affine matrix as a model file stores it, plus the exact f32 values of its stored scales/biases.
struct AffineMatrix {
  size_t rows = 0, cols = 0;
  int bits = 0, group = 0;
  DType scale_type = DType::kF16;
  std::vector<uint32_t> packed;
  std::vector<float> scales, biases;  // stored values, widened to f32
  std::vector<uint8_t> scale_bytes, bias_bytes;

  size_t groups() const { return cols / group; }
  MatrixView view() const {
    MatrixView v;
    v.type = WeightType::kAffine;
    v.rows = rows;
    v.cols = cols;
    v.data = packed.data();
    v.bits = bits;
    v.group_size = group;
    v.scale_type = scale_type;
    v.scales = scale_bytes.data();
    v.biases = bias_bytes.data();
    return v;
  }
  std::vector<uint8_t> codes() const {
    std::vector<uint8_t> c(rows * cols);
    const size_t words = cols * bits / 32;
    for (size_t r = 0; r < rows; ++r) {
      kernels::unpack_codes_reference(packed.data() + r * words, cols, bits, c.data() + r * cols);
    }
    return c;
  }
};

inline void store_params(AffineMatrix& m, const std::vector<float>& scales, const std::vector<float>& biases) {
  m.scales.resize(scales.size());
  m.biases.resize(biases.size());
  for (size_t i = 0; i < scales.size(); ++i) {
    m.scales[i] = round_to(m.scale_type, scales[i]);
    m.biases[i] = round_to(m.scale_type, biases[i]);
  }
  m.scale_bytes = to_storage(m.scale_type, m.scales);
  m.bias_bytes = to_storage(m.scale_type, m.biases);
}

// Random weights quantized with the scalar reference, scales/biases rounded to the storage dtype.
inline AffineMatrix quantized_random(std::mt19937& rng, size_t rows, size_t cols, int bits, int group,
                                     DType scale_type) {
  AffineMatrix m;
  m.rows = rows, m.cols = cols, m.bits = bits, m.group = group, m.scale_type = scale_type;
  const std::vector<float> w = random_floats(rng, rows * cols, -1.0f, 1.0f);
  m.packed.resize(rows * cols * bits / 32);
  std::vector<float> scales(rows * cols / group), biases(rows * cols / group);
  for (size_t r = 0; r < rows; ++r) {
    kernels::quantize_row_reference(w.data() + r * cols, cols, bits, group,
                                  m.packed.data() + r * cols * bits / 32,
                                  scales.data() + r * m.groups(), biases.data() + r * m.groups());
  }
  store_params(m, scales, biases);
  return m;
}

// Random codes with power-of-two scales and small integer biases: with small-integer activations every
// product and partial sum is exact in f32, so kernels must match the reference bit for bit.
inline AffineMatrix exact_random(std::mt19937& rng, size_t rows, size_t cols, int bits, int group,
                                 DType scale_type) {
  AffineMatrix m;
  m.rows = rows, m.cols = cols, m.bits = bits, m.group = group, m.scale_type = scale_type;
  std::uniform_int_distribution<int> code(0, (1 << bits) - 1), exponent(-3, 1), small(-4, 4);
  std::vector<uint8_t> codes(cols);
  m.packed.resize(rows * cols * bits / 32);
  for (size_t r = 0; r < rows; ++r) {
    for (auto& c : codes) c = static_cast<uint8_t>(code(rng));
    kernels::pack_codes_reference(codes.data(), cols, bits, m.packed.data() + r * cols * bits / 32);
  }
  std::vector<float> scales(rows * m.groups()), biases(rows * m.groups());
  for (size_t i = 0; i < scales.size(); ++i) {
    scales[i] = std::ldexp(small(rng) < 0 ? -1.0f : 1.0f, exponent(rng));
    biases[i] = static_cast<float>(small(rng));
  }
  store_params(m, scales, biases);
  return m;
}

inline std::vector<float> small_integers(std::mt19937& rng, size_t n) {
  std::uniform_int_distribution<int> dist(-3, 3);
  std::vector<float> v(n);
  for (float& f : v) f = static_cast<float>(dist(rng));
  return v;
}

// y[r] = sum_c w[r,c] x[c] in double, and sum_c |w[r,c] x[c]| (for error bounds), from dequantized
// values scale*q + bias computed in double.
struct ReferenceProduct {
  std::vector<double> value;
  std::vector<double> magnitude;
};

inline ReferenceProduct reference_affine_matvec(const AffineMatrix& m, const float* x) {
  ReferenceProduct out{std::vector<double>(m.rows), std::vector<double>(m.rows)};
  const std::vector<uint8_t> codes = m.codes();
  for (size_t r = 0; r < m.rows; ++r) {
    for (size_t c = 0; c < m.cols; ++c) {
      const size_t g = r * m.groups() + c / m.group;
      const double s = m.scales[g], b = m.biases[g], q = codes[r * m.cols + c];
      out.value[r] += (s * q + b) * x[c];
      out.magnitude[r] += (std::abs(s * q) + std::abs(b)) * std::abs(x[c]);
    }
  }
  return out;
}

// The same for float weights w [rows, cols] (already rounded to their stored dtype).
inline ReferenceProduct reference_float_matvec(const std::vector<float>& w, size_t rows, size_t cols,
                                               const float* x) {
  ReferenceProduct out{std::vector<double>(rows), std::vector<double>(rows)};
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) {
      const double p = double(w[r * cols + c]) * x[c];
      out.value[r] += p;
      out.magnitude[r] += std::abs(p);
    }
  }
  return out;
}

// Worst-case bound for an f32 sum of `terms` products in any association order: gamma_terms times
// the sum of magnitudes (u = 2^-24), plus a tiny absolute floor.
inline double sum_error_bound(size_t terms, double magnitude) {
  return (static_cast<double>(terms) + 8.0) * (FLT_EPSILON / 2) * magnitude + 1e-30;
}

// Whether every y[r] lies within sum_error_bound of the reference for products of `cols` terms; the
// message names the first row that does not.
inline ::testing::AssertionResult near_reference(const float* y, const ReferenceProduct& ref, size_t cols) {
  for (size_t r = 0; r < ref.value.size(); ++r) {
    const double bound = sum_error_bound(cols, ref.magnitude[r]);
    if (std::abs(y[r] - ref.value[r]) > bound)
      return ::testing::AssertionFailure() << "row " << r << ": " << y[r] << " vs " << ref.value[r] << " (bound " << bound << ")";
  }
  return ::testing::AssertionSuccess();
}

// A view of float weights stored as `dtype` (f32, f16 or bf16).
inline MatrixView float_view(DType dtype, size_t rows, size_t cols, const void* data) {
  MatrixView v;
  v.type = dtype == DType::kF32 ? WeightType::kF32 : dtype == DType::kF16 ? WeightType::kF16 : WeightType::kBF16;
  v.rows = rows;
  v.cols = cols;
  v.data = data;
  return v;
}

}  // namespace quantlab::kernels::testing
