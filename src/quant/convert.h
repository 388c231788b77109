// Element conversions between stored float types and f32, used by the streaming quantizer and
// dequantizer (hot input conversion goes through kernels::convert_to_f32).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace quantlab::quant {

// Rounds f32 values in place to the precision of `dtype` (F16/BF16), as casting the weights to that
// dtype before quantizing does in mlx-lm. No-op for F32.
void round_to_dtype(float* values, size_t n, DType dtype);

// Writes n f32 values as `dtype` (F32/F16/BF16) to out (n * dtype_size bytes, unaligned ok).
void store_as(const float* values, size_t n, DType dtype, uint8_t* out);

// Scalar conversion of stored F32/F16/BF16 to f32 (the reference path).
void load_as_f32_scalar(DType dtype, const uint8_t* data, size_t n, float* out);

}  // namespace quantlab::quant
