#include "kernels/affine_reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"

namespace quantlab::kernels {

AffineGroupParams affine_params_from_range(float lo, float hi, int bits) {
  const float n_bins = static_cast<float>(max_code(bits));
  constexpr float kEps = 1e-7f;
  const bool anchor_at_min = std::abs(lo) > std::abs(hi);
  float scale = std::max((hi - lo) / n_bins, kEps);
  scale = anchor_at_min ? scale : -scale;
  const float edge = anchor_at_min ? lo : hi;
  const float q0 = std::rint(edge / scale);
  float bias = 0.0f;
  if (q0 != 0.0f) {
    scale = edge / q0;  // re-fit so that zero is a grid point
    bias = edge;
  }
  return {scale, bias};
}

AffineGroupParams quantize_group_reference(const float* w, size_t n, int bits, uint8_t* codes) {
  const float n_bins = static_cast<float>(max_code(bits));
  float lo = std::numeric_limits<float>::infinity();
  float hi = -lo;
  for (size_t i = 0; i < n; ++i) {
    lo = std::min(lo, w[i]);
    hi = std::max(hi, w[i]);
  }
  const AffineGroupParams p = affine_params_from_range(lo, hi, bits);
  for (size_t i = 0; i < n; ++i) {
    const float q = std::rint((w[i] - p.bias) / p.scale);
    codes[i] = static_cast<uint8_t>(std::clamp(q, 0.0f, n_bins));
  }
  return p;
}

void pack_codes_reference(const uint8_t* codes, size_t n, int bits, uint32_t* words) {
  QL_CHECK(n * bits % 32 == 0, "{} codes of {} bits do not fill whole words", n, bits);
  std::fill(words, words + n * bits / 32, 0u);
  for (size_t i = 0; i < n; ++i) {
    for (int b = 0; b < bits; ++b) {
      const size_t bit = i * bits + b;
      words[bit / 32] |= static_cast<uint32_t>((codes[i] >> b) & 1u) << (bit % 32);
    }
  }
}

void unpack_codes_reference(const uint32_t* words, size_t n, int bits, uint8_t* codes) {
  for (size_t i = 0; i < n; ++i) {
    uint32_t code = 0;
    for (int b = 0; b < bits; ++b) {
      const size_t bit = i * bits + b;
      code |= ((words[bit / 32] >> (bit % 32)) & 1u) << b;
    }
    codes[i] = static_cast<uint8_t>(code);
  }
}

void quantize_row_reference(const float* w, size_t cols, int bits, int group_size, uint32_t* packed,
                            float* scales, float* biases) {
  QL_CHECK(cols % group_size == 0, "row of {} is not a multiple of group size {}", cols, group_size);
  std::vector<uint8_t> codes(cols);
  for (size_t g = 0; g < cols / group_size; ++g) {
    const AffineGroupParams p =
        quantize_group_reference(w + g * group_size, group_size, bits, codes.data() + g * group_size);
    scales[g] = p.scale;
    biases[g] = p.bias;
  }
  pack_codes_reference(codes.data(), cols, bits, packed);
}

void dequantize_row_reference(const uint32_t* packed, const float* scales, const float* biases,
                              size_t cols, int bits, int group_size, float* out) {
  std::vector<uint8_t> codes(cols);
  unpack_codes_reference(packed, cols, bits, codes.data());
  for (size_t i = 0; i < cols; ++i) {
    const size_t g = i / group_size;
    out[i] = std::fma(static_cast<float>(codes[i]), scales[g], biases[g]);
  }
}

}  // namespace quantlab::kernels
