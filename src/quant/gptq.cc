#include "quant/gptq.h"

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "kernels/affine_reference.h"
#include "kernels/gptq_columns.h"
#include "kernels/kernels.h"
#include "quant/cholesky.h"
#include "quant/convert.h"

namespace quantlab::quant {

namespace {

// The factorisation runs in float32, as GPTQ's reference implementation does: the damping bounds the
// condition number, and float halves the time of the two O(cols³) steps that dominate the method's cost.
using MatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// H in processing order, dead columns given H_ii = 1 (their error then goes nowhere), not yet damped.
MatrixF ordered_moments(std::span<const double> h, size_t cols, const std::vector<int32_t>& order) {
  MatrixF m(cols, cols);
  for (size_t i = 0; i < cols; ++i)
    for (size_t j = 0; j < cols; ++j) m(i, j) = static_cast<float>(h[static_cast<size_t>(order[i]) * cols + order[j]]);
  for (size_t i = 0; i < cols; ++i)
    if (m(i, i) <= 0) {
      m.row(i).setZero();
      m.col(i).setZero();
      m(i, i) = 1;
    }
  return m;
}

// MLX's group fit (kernels/affine_reference.h) with scale and bias rounded to the stored dtype.
kernels::AffineGroupParams fit_group(const float* w, int group_size, int bits, DType param_dtype) {
  uint8_t codes[256];
  QL_CHECK(group_size <= 256, "group size {} above 256", group_size);
  kernels::AffineGroupParams p = kernels::quantize_group_reference(w, static_cast<size_t>(group_size), bits, codes);
  round_to_dtype(&p.scale, 1, param_dtype);
  round_to_dtype(&p.bias, 1, param_dtype);
  return p;
}

// fit_group for `count` rows at once from column-major values ([group, count]: each column's rows
// together): every row's min and max in vector-friendly loops, then MLX's rule per row. params are
// written `stride` apart.
void fit_group_columns(const float* values, size_t count, size_t group, int bits, DType param_dtype,
                       kernels::AffineGroupParams* params, size_t stride) {
  std::vector<float> lo(values, values + count), hi(values, values + count);
  for (size_t j = 1; j < group; ++j) {
    const float* column = values + j * count;
    for (size_t r = 0; r < count; ++r) {
      lo[r] = std::min(lo[r], column[r]);
      hi[r] = std::max(hi[r], column[r]);
    }
  }
  for (size_t r = 0; r < count; ++r) {
    kernels::AffineGroupParams p = kernels::affine_params_from_range(lo[r], hi[r], bits);
    round_to_dtype(&p.scale, 1, param_dtype);
    round_to_dtype(&p.bias, 1, param_dtype);
    params[r * stride] = p;
  }
}

// U[b0:b1, b1:]ᵀ for every block but the last (GptqFactor::rest_transposed).
std::vector<std::vector<float>> rest_operands(const std::vector<float>& u, size_t n) {
  std::vector<std::vector<float>> out;
  for (size_t b0 = 0; b0 + kGptqBlock < n; b0 += kGptqBlock) {
    const size_t b1 = b0 + kGptqBlock, rest = n - b1;
    std::vector<float>& t = out.emplace_back(rest * kGptqBlock);
    transpose(u.data() + b0 * n + b1, n, kGptqBlock, rest, t.data(), kGptqBlock);
  }
  return out;
}

}  // namespace

GptqFactor gptq_factor(std::span<const double> h, size_t cols, const GptqOptions& options, ThreadPool& pool) {
  QL_CHECK(h.size() == cols * cols, "H has {} values for {} columns", h.size(), cols);
  for (double v : h)
    if (!std::isfinite(v)) fail_input("the input second moments are not finite (corrupt statistics?)");
  GptqFactor f;
  f.cols = cols;
  f.act_order = options.act_order;
  f.order.resize(cols);
  std::iota(f.order.begin(), f.order.end(), 0);
  if (options.act_order)  // stable: equal H_ii keep their column order, so the result is reproducible
    std::stable_sort(f.order.begin(), f.order.end(),
                     [&](int32_t a, int32_t b) { return h[a * cols + a] > h[b * cols + b]; });
  const MatrixF moments = ordered_moments(h, cols, f.order);
  const float mean_diag = moments.diagonal().mean();
  // U, the upper Cholesky factor of H⁻¹ (H⁻¹ = UᵀU), without forming H⁻¹: factor the reversed matrix,
  // PHP = L̃L̃ᵀ, so H = RRᵀ with R = PL̃P upper triangular; then H⁻¹ = R⁻ᵀR⁻¹ and U = R⁻¹ = P L̃⁻¹ P
  // (unique, as both have a positive diagonal): one factorisation that also yields its factor's
  // inverse (quant/cholesky.h). Damping is raised tenfold (up to 1000x) for a matrix that is still not
  // positive definite in floating point (very few calibration tokens for a wide input).
  const MatrixF reversed = moments.reverse();
  for (double damp = options.damp; damp <= options.damp * 1000 + 1e-12; damp *= 10) {
    MatrixF damped = reversed;
    damped.diagonal().array() += static_cast<float>(damp) * mean_diag;
    CholeskyWithInverse chol;
    if (!cholesky_with_inverse(std::vector<float>(damped.data(), damped.data() + damped.size()), cols, pool, chol))
      continue;
    f.u.assign(chol.inverse.rbegin(), chol.inverse.rend());  // P X P for row-major [cols, cols]: reversed storage
    f.damp_used = damp;
    f.rest_transposed = rest_operands(f.u, cols);
    return f;
  }
  fail_input("the input second moments stay indefinite even with damping {} (too few calibration tokens?)",
             options.damp * 1000);
}

GptqFactor gptq_factor(std::span<const double> h, size_t cols, const GptqOptions& options) {
  ThreadPool one(1);
  return gptq_factor(h, cols, options, one);
}

std::vector<double> gram(std::span<const float> m, size_t rows, size_t cols) {
  QL_CHECK(m.size() == rows * cols, "{} values for a {}x{} matrix", m.size(), rows, cols);
  const Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> d(m.data(), rows, cols);
  const Eigen::MatrixXd g = d.cast<double>().transpose() * d.cast<double>();  // symmetric: layout does not matter
  return {g.data(), g.data() + g.size()};
}

void add_delta_weighting(std::vector<double>& h, std::span<const double> delta_gram, size_t cols, double lambda) {
  QL_CHECK(h.size() == cols * cols && delta_gram.size() == cols * cols, "H and ΔWᵀΔW must be {0}x{0}", cols);
  double trace_h = 0, trace_d = 0;
  for (size_t i = 0; i < cols; ++i) {
    trace_h += h[i * cols + i];
    trace_d += delta_gram[i * cols + i];
  }
  if (trace_d <= 0 || lambda == 0) return;
  const double weight = lambda * trace_h / trace_d;
  for (size_t i = 0; i < h.size(); ++i) h[i] += weight * delta_gram[i];
}

namespace {

// Row k of U from column b0 of k's block on (k ≥ b0): the dense factor holds all of U, the low-rank one
// only its diagonal blocks, [cols, kGptqBlock].
const float* u_row(const GptqFactor& f, size_t k, size_t b0) {
  return f.rank == 0 ? f.u.data() + k * f.cols + b0 : f.u.data() + k * kGptqBlock;
}

// out [rows, w_rows] = in [rows, w_cols] · Wᵀ through the vector kernel, for a row-major f32 W (on this
// thread: the caller already runs one job per thread).
void product(const float* w, size_t w_rows, size_t w_cols, const float* in, size_t rows, std::vector<float>& out) {
  out.resize(rows * w_rows);
  ThreadPool this_thread(1);
  times_transposed(w, w_rows, w_cols, in, rows, out.data(), this_thread);
}

// x[j] −= d[j] through the dispatched vector kernel: −1·d + x rounds once, to exactly x − d.
void subtract(const float* d, float* x, size_t n) { kernels::axpy(-1.0f, d, x, n); }

// Low-rank form, before block [b0, b1): the block's columns take the optimal update for the errors of
// every column before it, X_b −= (A·V_bᵀ)·U_bb = A·W_bᵀ, where A [rows, rank] = Σ_{j<b0} δ_j g_jᵀ (δ = Ŵ − W)
// accumulates those errors in token space and W_b = U_bbᵀ·V_b (quant/gptq_low_rank.h).
void take_history(const GptqFactor& f, size_t b0, size_t b1, size_t rows, GptqScratch& s) {
  if (b0 == 0) return;
  const size_t n = f.cols, width = b1 - b0;
  product(f.w_blocks.data() + b0 * f.rank, width, f.rank, s.history.data(), rows, s.update);
  for (size_t r = 0; r < rows; ++r) subtract(s.update.data() + r * width, s.x.data() + r * n + b0, width);
}

// Low-rank form, after block [b0, b1): A += δ_b·G_b, δ_b (s.correction) the block's rounded minus its
// original weights.
void add_history(const GptqFactor& f, size_t b0, size_t b1, size_t rows, GptqScratch& s) {
  product(f.g_blocks.data() + b0 * f.rank, f.rank, b1 - b0, s.correction.data(), rows, s.update);
  kernels::axpy(1.0f, s.update.data(), s.history.data(), rows * f.rank);  // 1·u + h: exactly h + u
}

// Block [b0, b1) of rows [r0, r0 + count): their values column-major (the kernel's layout: rows in the
// vector lanes), each group's scale and bias fitted when its first column comes up (to the values
// updated by the block's earlier columns), the columns rounded in order by kernels::gptq_round_columns;
// codes into s.codes, the block's errors row-major into s.errors for the product that carries them on.
// At most kRowChunk rows at a time: a column stride of a power of two above 256 bytes would put the
// block's columns into a few L1 sets.
constexpr size_t kRowChunk = 64;

void round_block_rows(const GptqFactor& f, const float* w, size_t b0, size_t b1, size_t r0, size_t count, int bits,
                      int group_size, DType param_dtype, std::vector<kernels::AffineGroupParams>& params,
                      GptqScratch& s) {
  const size_t n = f.cols, width = b1 - b0, groups = n / group_size;
  s.block.resize(width * count);
  s.block_scales.resize(width * count);
  s.block_biases.resize(width * count);
  s.block_codes.resize(width * count);
  s.block_errors.resize(width * count);
  if (f.rank > 0) s.block_rounded.resize(width * count);
  transpose(s.x.data() + r0 * n + b0, n, count, width, s.block.data(), count);
  const float* u = u_row(f, b0, b0);
  const size_t u_stride = f.rank == 0 ? n : kGptqBlock;
  for (size_t k = b0; k < b1;) {
    // Without act-order the next call stops at the next group's first column, fitted in between.
    size_t end = b1;
    if (!f.act_order) {
      end = std::min(b1, k + static_cast<size_t>(group_size));
      fit_group_columns(s.block.data() + (k - b0) * count, count, static_cast<size_t>(group_size), bits, param_dtype,
                        params.data() + r0 * groups + static_cast<size_t>(f.order[k]) / group_size, groups);
    }
    // One group's parameters per row for the whole call, or (act-order: one call per block, k = b0)
    // each column's own, column c's at (c − b0)·count.
    const size_t param_stride = f.act_order ? count : 0;
    for (size_t c = k; c < (f.act_order ? end : k + 1); ++c)
      for (size_t r = 0; r < count; ++r) {
        const auto& p = params[(r0 + r) * groups + static_cast<size_t>(f.order[c]) / group_size];
        s.block_scales[(c - k) * param_stride + r] = p.scale;
        s.block_biases[(c - k) * param_stride + r] = p.bias;
      }
    kernels::gptq_round_columns(s.block.data(), count, width, k - b0, end - b0, u, u_stride, s.block_scales.data(),
                                s.block_biases.data(), param_stride, kernels::max_code(bits), s.block_codes.data(),
                                s.block_errors.data(), f.rank > 0 ? s.block_rounded.data() : nullptr);
    k = end;
  }
  transpose(s.block_errors.data(), count, width, count, s.errors.data() + r0 * kGptqBlock, kGptqBlock);
  if (!f.act_order) {  // the identity order: the block's codes go to columns b0 … b1 of their rows
    transpose(s.block_codes.data(), count, width, count, s.codes.data() + r0 * n + b0, n);
  } else {
    uint8_t* __restrict codes = s.codes.data() + r0 * n;
    for (size_t k = 0; k < width; ++k) {
      const uint8_t* __restrict column = s.block_codes.data() + k * count;
      const size_t c = static_cast<size_t>(f.order[b0 + k]);
      for (size_t r = 0; r < count; ++r) codes[r * n + c] = column[r];
    }
  }
  if (f.rank == 0) return;
  // Low-rank form: δ = Ŵ − W of the block, [rows, width], what add_history carries into the next blocks.
  s.correction.resize(s.x.size() / n * width);
  float* __restrict correction = s.correction.data() + r0 * width;
  transpose(s.block_rounded.data(), count, width, count, correction, width);
  for (size_t r = 0; r < count; ++r) {
    const float* __restrict row = w + (r0 + r) * n;
    for (size_t k = 0; k < width; ++k) correction[r * width + k] -= row[f.order[b0 + k]];
  }
}

void round_block(const GptqFactor& f, const float* w, size_t b0, size_t b1, size_t rows, int bits, int group_size,
                 DType param_dtype, std::vector<kernels::AffineGroupParams>& params, GptqScratch& s) {
  for (size_t r0 = 0; r0 < rows; r0 += kRowChunk)
    round_block_rows(f, w, b0, b1, r0, std::min(kRowChunk, rows - r0), bits, group_size, param_dtype, params, s);
}

}  // namespace

void gptq_quantize_rows(const GptqFactor& f, const float* w, size_t rows, int bits, int group_size,
                        DType param_dtype, uint32_t* packed, float* scales, float* biases, GptqScratch& s) {
  constexpr size_t kBlock = kGptqBlock;
  const size_t n = f.cols, groups = n / group_size, words = n * bits / 32;
  QL_CHECK(n % static_cast<size_t>(group_size) == 0, "row of {} is not a multiple of group size {}", n, group_size);
  // A group fitted when its first column comes up must lie inside that column's block.
  QL_CHECK(f.act_order || kBlock % static_cast<size_t>(group_size) == 0, "group size {} does not divide {}",
           group_size, kBlock);
  std::vector<kernels::AffineGroupParams> params(rows * groups);
  if (f.act_order)
    for (size_t r = 0; r < rows; ++r)
      for (size_t g = 0; g < groups; ++g)
        params[r * groups + g] = fit_group(w + r * n + g * group_size, group_size, bits, param_dtype);
  s.x.resize(rows * n);  // the rows in processing order, updated as errors are propagated
  if (!f.act_order) {
    std::copy(w, w + rows * n, s.x.begin());
  } else {
    for (size_t r = 0; r < rows; ++r)
      for (size_t k = 0; k < n; ++k) s.x[r * n + k] = w[r * n + f.order[k]];
  }
  s.codes.resize(rows * n);
  s.errors.resize(rows * kBlock);
  if (f.rank > 0) s.history.assign(rows * f.rank, 0.0f);
  for (size_t b0 = 0; b0 < n; b0 += kBlock) {
    const size_t b1 = std::min(n, b0 + kBlock);
    if (f.rank > 0) take_history(f, b0, b1, rows, s);
    round_block(f, w, b0, b1, rows, bits, group_size, param_dtype, params, s);
    if (f.rank > 0) {
      if (b1 < n) add_history(f, b0, b1, rows, s);
      continue;
    }
    if (b1 == n) break;
    // Every row's block errors to the columns after the block, X[:, b1:] −= E · U[b0:b1, b1:], as one
    // product through the vector kernel.
    const size_t rest = n - b1;
    product(f.rest_transposed[b0 / kBlock].data(), rest, kBlock, s.errors.data(), rows, s.update);
    for (size_t r = 0; r < rows; ++r) subtract(s.update.data() + r * rest, s.x.data() + r * n + b1, rest);
  }
  for (size_t r = 0; r < rows; ++r) {
    for (size_t g = 0; g < groups; ++g) {
      scales[r * groups + g] = params[r * groups + g].scale;
      biases[r * groups + g] = params[r * groups + g].bias;
    }
    kernels::pack_codes(s.codes.data() + r * n, n, bits, packed + r * words);
  }
}

double weighted_error(std::span<const float> w, std::span<const float> w_hat, std::span<const double> h,
                      size_t rows, size_t cols) {
  double total = 0;
  std::vector<double> e(cols);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) e[c] = static_cast<double>(w[r * cols + c]) - w_hat[r * cols + c];
    for (size_t i = 0; i < cols; ++i) {
      double hi = 0;
      for (size_t j = 0; j < cols; ++j) hi += h[i * cols + j] * e[j];
      total += e[i] * hi;
    }
  }
  return total;
}

}  // namespace quantlab::quant
