// The MLX "affine" quantization format's scalar reference implementation (its row in the format table,
// kernels/format.h, points here).
// This file is the definition: optimized kernels (kernels::affine_quantize, quantized matvec) are
// additions checked against it. Spec: docs/mlx-format.md §1-§2 (restated from MLX's CPU kernel).
//
// Per group of `group_size` consecutive values along a row (all f32 arithmetic):
//   lo, hi = min, max; s = max((hi - lo) / (2^bits - 1), 1e-7)
//   anchor = the end with larger magnitude (ties: hi): scale = +s, edge = lo  |  scale = -s, edge = hi
//   q0 = rint(edge / scale); if q0 != 0: scale = edge / q0, bias = edge; else bias = 0
//   q = clamp(rint((w - bias) / scale), 0, 2^bits - 1);  w ~= scale * q + bias
// Codes of a row form one little-endian, LSB-first bit stream stored as uint32 words.
#pragma once

#include <cstddef>
#include <cstdint>

namespace quantlab::kernels {

struct AffineGroupParams {
  float scale = 0;
  float bias = 0;
};

// Largest code value, 2^bits - 1.
inline uint32_t max_code(int bits) { return (1u << bits) - 1u; }

// The group's f32 scale and bias from its min and max (the first half of quantize_group_reference).
AffineGroupParams affine_params_from_range(float lo, float hi, int bits);

// Quantizes one group of n values; writes n codes. Returns the unrounded f32 scale and bias.
AffineGroupParams quantize_group_reference(const float* w, size_t n, int bits, uint8_t* codes);

// Packs n codes (n*bits a multiple of 32) into n*bits/32 words: code i at stream bits [i*bits, ...).
void pack_codes_reference(const uint8_t* codes, size_t n, int bits, uint32_t* words);
void unpack_codes_reference(const uint32_t* words, size_t n, int bits, uint8_t* codes);

// A whole row of `cols` values: packed [cols*bits/32], scales/biases [cols/group_size] (f32, unrounded).
void quantize_row_reference(const float* w, size_t cols, int bits, int group_size, uint32_t* packed,
                            float* scales, float* biases);

// out[i] = scale[g] * q[i] + bias[g] in f32 (fma), g = i / group_size.
void dequantize_row_reference(const uint32_t* packed, const float* scales, const float* biases,
                              size_t cols, int bits, int group_size, float* out);

}  // namespace quantlab::kernels
