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

// a: [n, n] row-major, symmetric. Returns false when a (or a Schur complement of it) is not positive
// definite in float32, or the result is not finite. Deterministic for any pool size.
bool cholesky_with_inverse(const std::vector<float>& a, size_t n, ThreadPool& pool, CholeskyWithInverse& out);

}  // namespace quantlab::quant
