// GPTQ's column-by-column step (quant/gptq.h) for many rows at once: the one part of the method that
// cannot be a matrix product, and which, one row at a time, cost more than all the products together
// (a dispatched axpy of ~64 values and a scalar rounding per weight). Here a block's rows lie in the
// vector lanes: each column's codes and errors for 16 rows (AVX-512) in a few instructions, and each
// error's update of the block's later columns a multiply-add per 16 rows.
#pragma once

#include <cstddef>
#include <cstdint>

namespace quantlab::kernels {

// One block of `width` columns for `rows` rows, every array column-major [width, rows] (entry
// k·rows + r: column k of row r) — scales and biases too when param_stride is rows; with param_stride 0
// they are [rows], one group for all the columns of the call. For each column k in [first, last), in order, and every row:
//   code  = clamp(round_half_even((x − bias) / scale), 0, max_code)   (0 where scale is 0)
//   error = (x − (code·scale + bias)) / U[k, k]
//   x[m] −= error · U[k, m]   for every m in (k, width)
// with U[k, m] = u[k·u_stride + m]. codes and errors receive each column's results, and `rounded` (when
// not null) its stored value code·scale + bias; x is updated in place. The arithmetic per element is the scalar reference's (gptq_round_columns_reference), so the
// result does not depend on the target except through the multiply-add's fusing.
void gptq_round_columns(float* x, size_t rows, size_t width, size_t first, size_t last, const float* u,
                        size_t u_stride, const float* scales, const float* biases, size_t param_stride, int max_code,
                        uint8_t* codes, float* errors, float* rounded = nullptr);

// The same, one element at a time: the definition the vector kernel is tested against.
void gptq_round_columns_reference(float* x, size_t rows, size_t width, size_t first, size_t last, const float* u,
                                  size_t u_stride, const float* scales, const float* biases, size_t param_stride,
                                  int max_code, uint8_t* codes, float* errors, float* rounded = nullptr);

}  // namespace quantlab::kernels
