// Per-target f32 vector helpers shared by the element-wise kernels (elementwise.cc) and attention
// (attention.cc): max, softmax and axpy, each vectorised with a single-lane tail. Included once per
// Highway target (the toggle guard below is Highway's per-target include idiom).
#if defined(QUANTLAB_KERNELS_VECTOR_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QUANTLAB_KERNELS_VECTOR_INL_H_
#undef QUANTLAB_KERNELS_VECTOR_INL_H_
#else
#define QUANTLAB_KERNELS_VECTOR_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "kernels/convert-inl.h"

HWY_BEFORE_NAMESPACE();
namespace quantlab::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// y += a * x.
inline void AxpyF32(float a, const float* x, float* y, size_t n) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    hn::StoreU(hn::MulAdd(hn::Set(df, a), hn::LoadU(df, x + i), hn::LoadU(df, y + i)), df, y + i);
  }
  const hn::CappedTag<float, 1> d1;
  for (; i < n; ++i) {
    hn::StoreU(hn::MulAdd(hn::Set(d1, a), hn::LoadU(d1, x + i), hn::LoadU(d1, y + i)), d1, y + i);
  }
}

inline float MaxF32(const float* x, size_t n) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  auto m = hn::Set(df, -HUGE_VALF);
  size_t i = 0;
  for (; i + N <= n; i += N) m = hn::Max(m, hn::LoadU(df, x + i));
  float result = hn::GetLane(hn::MaxOfLanes(df, m));
  for (; i < n; ++i) result = std::max(result, x[i]);
  return result;
}

// x[i] = exp(x[i] - shift); returns the sum of the new values.
template <class D>
HWY_INLINE hn::Vec<D> ExpShifted(D d, float* x, float shift) {
  const auto e = hn::Exp(d, hn::Sub(hn::LoadU(d, x), hn::Set(d, shift)));
  hn::StoreU(e, d, x);
  return e;
}

// x *= factor.
inline void ScaleInPlace(float* x, size_t n, float factor) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(df, x + i), hn::Set(df, factor)), df, x + i);
  for (; i < n; ++i) x[i] *= factor;
}

// In-place softmax over n values (subtracts the max).
inline void SoftmaxF32(float* x, size_t n) {
  if (n == 0) return;
  const float max = MaxF32(x, n);
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  auto sum = hn::Zero(df);
  size_t i = 0;
  for (; i + N <= n; i += N) sum = hn::Add(sum, ExpShifted(df, x + i, max));
  float total = SumLanes(df, sum);
  for (; i < n; ++i) total += hn::GetLane(ExpShifted(hn::CappedTag<float, 1>(), x + i, max));
  ScaleInPlace(x, n, 1.0f / total);
}

}  // namespace quantlab::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // QUANTLAB_KERNELS_VECTOR_INL_H_
