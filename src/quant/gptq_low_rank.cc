#include "quant/gptq_low_rank.h"

#include <Eigen/Core>
#include <Eigen/LU>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/half.h"
#include "kernels/kernels.h"
#include "quant/cholesky.h"

namespace quantlab::quant {

namespace {

using MatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// G's columns in processing order as rows, [cols, n] (g_k = X[:, order[k]] / √tokens), and the damped
// diagonal D in that order.
struct Generators {
  size_t cols = 0, n = 0;
  std::vector<float> g;         // [cols, n]
  std::vector<float> diagonal;  // H_kk of the undamped matrix, dead columns (no input reached them) at 1
  std::vector<uint8_t> dead;
  std::vector<int32_t> order;
};

Generators generators(std::span<const float> x, size_t tokens, size_t cols, bool act_order) {
  Generators out{cols, tokens, std::vector<float>(cols * tokens), std::vector<float>(cols), std::vector<uint8_t>(cols), {}};
  const float scale = 1.0f / std::sqrt(static_cast<float>(tokens));
  std::vector<float> diag(cols, 0.0f);
  for (size_t t = 0; t < tokens; ++t)
    for (size_t c = 0; c < cols; ++c) diag[c] += x[t * cols + c] * x[t * cols + c] * scale * scale;
  out.order.resize(cols);
  std::iota(out.order.begin(), out.order.end(), 0);
  if (act_order)  // stable, as the dense form sorts
    std::stable_sort(out.order.begin(), out.order.end(), [&](int32_t a, int32_t b) { return diag[a] > diag[b]; });
  for (size_t k = 0; k < cols; ++k) {
    const size_t c = static_cast<size_t>(out.order[k]);
    out.diagonal[k] = diag[c] > 0 ? diag[c] : 1.0f;
    out.dead[k] = diag[c] > 0 ? 0 : 1;
    if (diag[c] > 0)
      for (size_t t = 0; t < tokens; ++t) out.g[k * tokens + t] = x[t * cols + c] * scale;
  }
  return out;
}

// One block [b0, b1) of Ũ, given M (columns after the block already taken out of it): fills v's rows
// b0..b1 and returns Ũ_bb, or an empty matrix when a pivot is not positive.
MatrixF factor_block(const Generators& gen, const std::vector<float>& damped, size_t b0, size_t b1,
                     const std::vector<float>& m, std::vector<float>& v, ThreadPool& pool) {
  const size_t n = gen.n, width = b1 - b0;
  std::vector<float> p(width * n);
  times_transposed(m.data(), n, n, gen.g.data() + b0 * n, width, p.data(), pool);  // rows: M g_k (M is symmetric)
  MatrixF block = MatrixF::Zero(width, width);
  for (size_t k = b1; k-- > b0;) {
    const float* g = gen.g.data() + k * n;
    float* pk = p.data() + (k - b0) * n;
    for (size_t j = k + 1; j < b1; ++j) {  // M_k g_k = M g_k − Σ_{j>k in the block} v_j (v_jᵀ g_k)
      const float c = kernels::dot(g, v.data() + j * n, n);
      block(k - b0, j - b0) = c;
      kernels::axpy(-c, v.data() + j * n, pk, n);
    }
    const float pivot = damped[k] + kernels::dot(g, pk, n);
    if (!(pivot > 0) || !std::isfinite(pivot)) return {};
    const float diag = std::sqrt(pivot);
    block(k - b0, k - b0) = diag;
    for (size_t t = 0; t < n; ++t) v[k * n + t] = pk[t] / diag;
  }
  return block;
}

// M −= V_bᵀ V_b for the block's generators.
void remove_block(const std::vector<float>& v, size_t b0, size_t b1, size_t n, std::vector<float>& m,
                  ThreadPool& pool) {
  const size_t width = b1 - b0;
  std::vector<float> vt(n * width), vv(n * n);
  transpose(v.data() + b0 * n, n, width, n, vt.data(), width);
  times_transposed(vt.data(), n, width, vt.data(), n, vv.data(), pool);
  kernels::axpy(-1.0f, vv.data(), m.data(), m.size());  // −1·vv + m rounds once: exactly m − vv
}

// The operands of block b0 in the factor: U_bb (as `u` rows), W_b = U_bbᵀ·V_b and G_bᵀ.
void store_block(const Generators& gen, const MatrixF& u_tilde, const std::vector<float>& v, size_t b0,
                 GptqFactor& f) {
  const size_t width = static_cast<size_t>(u_tilde.rows()), n = gen.n;
  const MatrixF inverse = u_tilde.triangularView<Eigen::Upper>().solve(MatrixF::Identity(width, width));
  for (size_t i = 0; i < width; ++i)
    for (size_t j = i; j < width; ++j) f.u[(b0 + i) * kGptqBlock + j] = inverse(i, j);
  const Eigen::Map<const MatrixF> v_block(v.data() + b0 * n, width, n);
  Eigen::Map<MatrixF> w_block(f.w_blocks.data() + b0 * n, width, n);
  w_block.noalias() = inverse.transpose().triangularView<Eigen::Lower>() * v_block;
  transpose(gen.g.data() + b0 * n, n, width, n, f.g_blocks.data() + b0 * n, width);
}

// The whole factor with one damping; false when a pivot is not positive. As the dense form, D_k adds
// damp·mean(diag H) to every column, and dead columns (g_k = 0) get H_kk = 1 besides.
bool factor_with_damping(const Generators& gen, double damp, GptqFactor& f, ThreadPool& pool) {
  const size_t cols = gen.cols, n = gen.n;
  const double mean_diag = std::accumulate(gen.diagonal.begin(), gen.diagonal.end(), 0.0) / static_cast<double>(cols);
  std::vector<float> damped(cols);
  for (size_t k = 0; k < cols; ++k) damped[k] = static_cast<float>(damp * mean_diag) + (gen.dead[k] ? 1.0f : 0.0f);
  std::vector<float> m(n * n, 0.0f);
  for (size_t t = 0; t < n; ++t) m[t * n + t] = 1.0f;
  std::vector<float> v(cols * n, 0.0f);  // the generators v_k, [cols, n]
  f.u.assign(cols * kGptqBlock, 0.0f);
  f.w_blocks.assign(cols * n, 0.0f);
  f.g_blocks.assign(cols * n, 0.0f);
  const size_t last = (cols - 1) / kGptqBlock * kGptqBlock;
  for (size_t b0 = last + kGptqBlock; b0 >= kGptqBlock;) {
    b0 -= kGptqBlock;
    const size_t b1 = std::min(cols, b0 + kGptqBlock);
    const MatrixF u_tilde = factor_block(gen, damped, b0, b1, m, v, pool);
    if (u_tilde.size() == 0) return false;
    store_block(gen, u_tilde, v, b0, f);
    if (b0 > 0) remove_block(v, b0, b1, n, m, pool);
  }
  return true;
}

}  // namespace

std::vector<float> expert_inputs(const RoutedInputs& in, size_t expert) {
  std::vector<float> out;
  for (size_t r = 0; r < in.rows; ++r)
    for (size_t j = 0; j < in.route_width; ++j)
      if (static_cast<size_t>(in.routes[r * in.route_width + j]) == expert) {
        for (size_t c = 0; c < in.cols; ++c) out.push_back(bf16_to_f32(in.values[r * in.cols + c]));
        break;
      }
  return out;
}

bool low_rank_pays(size_t tokens, size_t cols) { return 2 * tokens + kGptqBlock < cols; }

std::vector<double> second_moments_of(std::span<const float> x, size_t tokens, size_t cols, ThreadPool& pool) {
  QL_CHECK(x.size() == tokens * cols, "{} inputs for {} tokens of {} columns", x.size(), tokens, cols);
  // XᵀX in float through the vector kernel (Xᵀ times itself transposed): the dense form factors in
  // float32 anyway, and Eigen's double product for the baseline ISA cost more than the whole rounding.
  std::vector<float> xt(cols * tokens), h(cols * cols);
  transpose(x.data(), cols, tokens, cols, xt.data(), tokens);
  times_transposed(xt.data(), cols, tokens, xt.data(), cols, h.data(), pool);
  const double scale = 1.0 / static_cast<double>(std::max<size_t>(tokens, 1));
  std::vector<double> out(cols * cols);
  for (size_t i = 0; i < cols; ++i)  // symmetric to the bit: the upper triangle mirrored
    for (size_t j = i; j < cols; ++j) out[i * cols + j] = out[j * cols + i] = h[i * cols + j] * scale;
  return out;
}

GptqFactor gptq_low_rank_factor(std::span<const float> x, size_t tokens, size_t cols, const GptqOptions& options,
                                ThreadPool& pool) {
  QL_CHECK(tokens >= 1 && x.size() == tokens * cols, "{} inputs for {} tokens of {} columns", x.size(), tokens, cols);
  if (kernels::first_non_finite(x.data(), x.size()) != x.size())
    fail_input("the routed calibration inputs are not finite (corrupt statistics?)");
  const Generators gen = generators(x, tokens, cols, options.act_order);
  GptqFactor f;
  f.cols = cols;
  f.rank = tokens;
  f.act_order = options.act_order;
  f.order = gen.order;
  for (double damp = options.damp; damp <= options.damp * 1000 + 1e-12; damp *= 10) {
    if (!factor_with_damping(gen, damp, f, pool)) continue;
    f.damp_used = damp;
    return f;
  }
  fail_input("the routed calibration inputs stay indefinite even with damping {} (too few tokens?)",
             options.damp * 1000);
}

}  // namespace quantlab::quant
