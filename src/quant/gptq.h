// Error-compensated rounding into MLX's affine layout (issue 21): GPTQ (Frantar et al., 2022) with
// groups, and its delta-aware variant. The output is ordinary MLX affine data — packed codes, one
// scale and one bias per group — so the files load and run wherever round-to-nearest files do; only
// the choice of codes (and of the group parameters, fitted to the error-updated weights) differs.
//
// Per Linear with input second moments H = E[x xᵀ] (cols x cols): H is damped (H += damp·mean(diag H)·I;
// a column no input ever reached gets H_ii = 1), U = the upper Cholesky factor of H⁻¹. Then, row by row
// (rows are independent, which is what makes the work parallel and the result the same for any thread
// count), columns are rounded in order and each column's error, divided by U_kk, is subtracted from the
// columns not yet rounded in proportion to U_k·: that minimises ‖(W − Ŵ)X‖² one column at a time.
// Groups: without act-order a group's scale and bias are fitted (MLX's rule, kernels/affine_reference.h)
// to the error-updated weights when the group's first column comes up, as GPTQ with groups does; with
// act-order (columns in decreasing H_ii) the groups would be visited out of order, so their parameters
// are fitted to the original weights first ("static groups"). Scale and bias are rounded to the stored
// dtype before any code is chosen with them, so the error propagated is the error of the stored model.
//
// Delta-aware (`delta`): the same machinery with H replaced by H + λ·(tr H / tr ΔWᵀΔW)·ΔWᵀΔW, where ΔW
// is the fine-tune's change of this Linear (fused − base). The added term is ‖(W − Ŵ)ΔWᵀ‖², the error
// in the input directions the fine-tune writes to: rounding that would cancel the fine-tune's change
// costs more there than rounding elsewhere. The trace ratio makes λ scale-free (docs/rounding.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"

namespace quantlab::quant {

struct GptqOptions {
  double damp = 0.1;       // fraction of mean(diag H) added to the diagonal (docs/rounding.md: not GPTQ's 0.01)
  bool act_order = false;  // round columns in decreasing H_ii (static groups)
};

// What the rounding of every row of one Linear needs: U in processing order, and that order.
struct GptqFactor {
  size_t cols = 0;
  std::vector<float> u;         // [cols, cols] row-major, upper triangle used: row k = column order[k]
  std::vector<int32_t> order;   // processing order of the columns (identity without act-order)
  // Per block of kGptqBlock columns [b0, b1) (all but the last): U[b0:b1, b1:]ᵀ, [cols − b1, b1 − b0]
  // row-major, the operand of the block's error product in the form kernels::matmul reads.
  std::vector<std::vector<float>> rest_transposed;
  double damp_used = 0;         // the damping that made H positive definite (raised from damp if needed)
  bool act_order = false;
  // Low-rank form (quant/gptq_low_rank.h), for H = XᵀX/tokens + damping with fewer tokens than columns:
  // rank = the tokens (0: the dense form above). Then `u` holds only U's diagonal blocks, [cols, kGptqBlock]
  // (row k: U[k, b0 .. b0 + kGptqBlock) of k's block b0), rest_transposed is empty, and the columns before
  // a block reach it through the operands below instead of through U's off-diagonal blocks.
  size_t rank = 0;
  std::vector<float> w_blocks;   // per block at b0·rank: W_b = U_bbᵀ·V_b, [block, rank] (V: the generators)
  std::vector<float> g_blocks;   // per block at b0·rank: Gᵀ of the block's columns, [rank, block] (G = X/√tokens)
};

// Columns per block: inside a block the error goes column by column, past it in one product.
inline constexpr size_t kGptqBlock = 128;

// H: [cols, cols] row-major, symmetric positive semi-definite. Throws Error(kInvalidInput) when H is
// not finite or stays indefinite after raising the damping 1000-fold. The factorisation's products run
// on `pool` (quant/cholesky.h); the result does not depend on its size.
GptqFactor gptq_factor(std::span<const double> h, size_t cols, const GptqOptions& options, ThreadPool& pool);
GptqFactor gptq_factor(std::span<const double> h, size_t cols, const GptqOptions& options);  // one thread

// MᵀM for m [rows, cols] row-major: [cols, cols]. Summed over row chunks it gives ΔWᵀΔW.
std::vector<double> gram(std::span<const float> m, size_t rows, size_t cols);
// h += lambda · (tr h / tr delta_gram) · delta_gram (h unchanged when the delta is zero).
void add_delta_weighting(std::vector<double>& h, std::span<const double> delta_gram, size_t cols, double lambda);

// Rows handed to gptq_quantize_rows together (2 MB of float32): each block's products then carry 256 rows
// of a 2048-wide Linear instead of 64, which their per-call preparation needs to be amortised. The rows
// of one call share its products' summation order, so quantize and sensitivity use the same chunks
// (split_rows of quant/quantizer.h) and get the same codes.
inline constexpr int64_t kGptqRowChunkElements = 1 << 19;

// Scratch of gptq_quantize_rows, kept per thread between calls.
struct GptqScratch {
  std::vector<float> x, errors, update, history, correction;
  std::vector<float> block, block_scales, block_biases, block_errors, block_rounded;  // one block, column-major
  std::vector<uint8_t> codes, block_codes;
};

// Rounds `rows` rows of `cols` weights (w row-major): per row, codes packed LSB-first into `packed`
// [cols·bits/32], scales and biases [cols/group] as f32 values exactly representable in `param_dtype`
// (F16, BF16 or F32). Columns go in blocks of 128, as GPTQ's implementation does: within a block the
// error is propagated column by column, to the columns after the block in one matrix product per block
// (the same arithmetic, reordered, at matrix-product speed). The result of a row depends on the rows
// handed in together only through that product's summation order, which is fixed for a given call.
void gptq_quantize_rows(const GptqFactor& factor, const float* w, size_t rows, int bits, int group_size,
                        DType param_dtype, uint32_t* packed, float* scales, float* biases, GptqScratch& scratch);

// ‖(W − Ŵ)X‖² per token as tr((W − Ŵ) H (W − Ŵ)ᵀ), for tests and reports: w and w_hat [rows, cols].
double weighted_error(std::span<const float> w, std::span<const float> w_hat, std::span<const double> h,
                      size_t rows, size_t cols);

}  // namespace quantlab::quant
