#include "quant/cholesky.h"

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include <cmath>

#include "kernels/kernels.h"

namespace quantlab::quant {

namespace {

using MatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Below this size the recursion's products are too small for the vector kernel to pay off.
constexpr size_t kDirectSize = 192;

// A dense row-major matrix with the few block operations the recursion needs.
struct Dense {
  size_t rows = 0, cols = 0;
  std::vector<float> v;
  Dense(size_t r, size_t c) : rows(r), cols(c), v(r * c, 0.0f) {}
  float* row(size_t r) { return v.data() + r * cols; }
  const float* row(size_t r) const { return v.data() + r * cols; }
};

Dense block(const std::vector<float>& a, size_t n, size_t r0, size_t c0, size_t rows, size_t cols) {
  Dense out(rows, cols);
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) out.row(r)[c] = a[(r0 + r) * n + c0 + c];
  return out;
}

Dense transposed(const Dense& m) {
  Dense out(m.cols, m.rows);
  transpose(m.v.data(), m.cols, m.rows, m.cols, out.v.data(), m.rows);
  return out;
}

// x · wᵀ: [x.rows, w.rows].
Dense times_transposed(const Dense& x, const Dense& w, ThreadPool& pool) {
  Dense y(x.rows, w.rows);
  quant::times_transposed(w.v.data(), w.rows, w.cols, x.v.data(), x.rows, y.v.data(), pool);
  return y;
}

void put(std::vector<float>& dst, size_t n, size_t r0, size_t c0, const Dense& src) {
  for (size_t r = 0; r < src.rows; ++r)
    for (size_t c = 0; c < src.cols; ++c) dst[(r0 + r) * n + c0 + c] = src.row(r)[c];
}

bool direct(const std::vector<float>& a, size_t n, CholeskyWithInverse& out) {
  const Eigen::Map<const MatrixF> m(a.data(), static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(n));
  const Eigen::LLT<MatrixF> llt(m);
  if (llt.info() != Eigen::Success) return false;
  MatrixF l = llt.matrixL();
  MatrixF x = MatrixF::Identity(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(n));
  l.triangularView<Eigen::Lower>().solveInPlace(x);
  x.triangularView<Eigen::StrictlyUpper>().setZero();
  out.lower.assign(l.data(), l.data() + l.size());
  out.inverse.assign(x.data(), x.data() + x.size());
  return true;
}

bool all_finite(const std::vector<float>& v) {
  for (float f : v)
    if (!std::isfinite(f)) return false;
  return true;
}

}  // namespace

void times_transposed(const float* w, size_t w_rows, size_t w_cols, const float* in, size_t rows, float* out,
                      ThreadPool& pool) {
  kernels::MatrixView view;
  view.type = kernels::WeightType::kF32;
  view.rows = w_rows;
  view.cols = w_cols;
  view.data = w;
  kernels::matmul(view, in, rows, out, pool);
}

bool cholesky_with_inverse(const std::vector<float>& a, size_t n, ThreadPool& pool, CholeskyWithInverse& out) {
  if (n <= kDirectSize) return direct(a, n, out) && all_finite(out.lower) && all_finite(out.inverse);
  const size_t n1 = (n / 2 + 15) / 16 * 16, n2 = n - n1;  // a split on whole vectors
  CholeskyWithInverse top;
  if (!cholesky_with_inverse(block(a, n, 0, 0, n1, n1).v, n1, pool, top)) return false;
  Dense x11(n1, n1), l11(n1, n1);
  x11.v = std::move(top.inverse);
  l11.v = std::move(top.lower);
  const Dense l21 = times_transposed(block(a, n, n1, 0, n2, n1), x11, pool);  // A21 X11ᵀ
  Dense schur = times_transposed(l21, l21, pool);                                 // L21 L21ᵀ
  const Dense a22 = block(a, n, n1, n1, n2, n2);
  for (size_t i = 0; i < schur.v.size(); ++i) schur.v[i] = a22.v[i] - schur.v[i];
  CholeskyWithInverse bottom;
  if (!cholesky_with_inverse(schur.v, n2, pool, bottom)) return false;
  Dense x22(n2, n2), l22(n2, n2);
  x22.v = std::move(bottom.inverse);
  l22.v = std::move(bottom.lower);
  const Dense t = times_transposed(l21, transposed(x11), pool);  // L21 X11
  Dense x21 = times_transposed(x22, transposed(t), pool);        // X22 L21 X11
  for (float& f : x21.v) f = -f;
  out.lower.assign(n * n, 0.0f);
  out.inverse.assign(n * n, 0.0f);
  put(out.lower, n, 0, 0, l11);
  put(out.lower, n, n1, 0, l21);
  put(out.lower, n, n1, n1, l22);
  put(out.inverse, n, 0, 0, x11);
  put(out.inverse, n, n1, 0, x21);
  put(out.inverse, n, n1, n1, x22);
  return all_finite(out.lower) && all_finite(out.inverse);
}

}  // namespace quantlab::quant
