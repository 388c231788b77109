// The O(n³) linear algebra of GPTQ (quant/gptq.h) at matrix-product speed: a recursive Cholesky
// factorisation that also returns the inverse of its factor, with every large step a product through
// kernels::matmul (Highway, runtime-dispatched: AVX-512 / AVX2 / NEON), not Eigen compiled for the
// baseline ISA. Eigen factors only the small diagonal blocks at the bottom of the recursion.
//
// For A = [A11 A21ᵀ; A21 A22] symmetric positive definite, with A11 = L11 L11ᵀ and X11 = L11⁻¹:
//   L21 = A21 X11ᵀ,  S = A22 − L21 L21ᵀ = L22 L22ᵀ,  X22 = L22⁻¹,  X21 = −X22 L21 X11.
// The triangular operands go through the full product (about twice the flops of a triangular-aware
// routine), which the vector kernel repays many times over on the CPUs this runs on.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "core/thread_pool.h"

namespace quantlab::quant {

struct CholeskyWithInverse {
  std::vector<float> lower;    // L, [n, n] row-major, zero above the diagonal: A = L Lᵀ
  std::vector<float> inverse;  // L⁻¹, [n, n] row-major, lower triangular
};

// out [rows, w_rows] = in [rows, w_cols] · Wᵀ for a row-major f32 W, through kernels::matmul: the one
// product GPTQ's linear algebra (here, quant/gptq.h, quant/gptq_low_rank.h) is built from.
void times_transposed(const float* w, size_t w_rows, size_t w_cols, const float* in, size_t rows, float* out,
                      ThreadPool& pool);

// out[c·out_stride + r] = in[r·in_stride + c] for a rows × cols block, in 16 × 16 tiles so that both
// sides of each tile stay in L1 (column by column, the strided side touched a new line per value): the
// layout changes GPTQ's products and its in-block kernel need.
template <typename T>
void transpose(const T* __restrict in, size_t in_stride, size_t rows, size_t cols, T* __restrict out,
               size_t out_stride) {
  constexpr size_t kTile = 16;
  for (size_t r0 = 0; r0 < rows; r0 += kTile)
    for (size_t c0 = 0; c0 < cols; c0 += kTile) {
      const size_t r1 = std::min(rows, r0 + kTile), c1 = std::min(cols, c0 + kTile);
      for (size_t r = r0; r < r1; ++r)
        for (size_t c = c0; c < c1; ++c) out[c * out_stride + r] = in[r * in_stride + c];
    }
}

// a: [n, n] row-major, symmetric. Returns false when a (or a Schur complement of it) is not positive
// definite in float32, or the result is not finite. Deterministic for any pool size.
bool cholesky_with_inverse(const std::vector<float>& a, size_t n, ThreadPool& pool, CholeskyWithInverse& out);

}  // namespace quantlab::quant
