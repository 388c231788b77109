// Vector kernels over f32 activations: conversion, RMSNorm, RoPE, softmax, SiLU gating, dot, axpy and
// single-head attention. Compiled once per Highway target (foreach_target.h re-includes this file);
// each public function dispatches once to the best target the CPU supports.
#include "kernels/highway_config.h"  // must precede the hwy includes

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/elementwise.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "kernels/convert-inl.h"
#include "kernels/kernels.h"

HWY_BEFORE_NAMESPACE();
namespace quantlab::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using D1 = hn::CappedTag<float, 1>;  // tails: the same operations, one lane at a time

const char* TargetNameImpl() { return hwy::TargetName(HWY_TARGET); }

void ConvertToF32Impl(DType src, const void* data, size_t n, float* out) {
  ConvertToF32Row(src, data, n, out);
}

float DotImpl(const float* a, const float* b, size_t n) { return DotF32(a, b, n); }

void AxpyImpl(float a, const float* x, float* y, size_t n) {
  const DF df;
  const size_t N = hn::Lanes(df);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    hn::StoreU(hn::MulAdd(hn::Set(df, a), hn::LoadU(df, x + i), hn::LoadU(df, y + i)), df, y + i);
  }
  const D1 d1;
  for (; i < n; ++i) {
    hn::StoreU(hn::MulAdd(hn::Set(d1, a), hn::LoadU(d1, x + i), hn::LoadU(d1, y + i)), d1, y + i);
  }
}

// out = weight * x * scale_factor, vectorised with a single-lane tail.
void ScaleByWeight(const float* x, const float* weight, size_t n, float factor, float* out) {
  const DF df;
  const size_t N = hn::Lanes(df);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = hn::Mul(hn::LoadU(df, x + i), hn::Set(df, factor));
    hn::StoreU(hn::Mul(v, hn::LoadU(df, weight + i)), df, out + i);
  }
  const D1 d1;
  for (; i < n; ++i) {
    const auto v = hn::Mul(hn::LoadU(d1, x + i), hn::Set(d1, factor));
    hn::StoreU(hn::Mul(v, hn::LoadU(d1, weight + i)), d1, out + i);
  }
}

void RmsNormImpl(const float* x, const float* weight, size_t n, float eps, float* out) {
  const float mean_square = DotF32(x, x, n) / static_cast<float>(n);
  const float inv_rms = 1.0f / std::sqrt(mean_square + eps);
  ScaleByWeight(x, weight, n, inv_rms, out);
}

template <class D>
HWY_INLINE void RotatePairs(D d, float* lo, float* hi, const float* cos, const float* sin) {
  const auto x1 = hn::LoadU(d, lo);
  const auto x2 = hn::LoadU(d, hi);
  const auto c = hn::LoadU(d, cos);
  const auto s = hn::LoadU(d, sin);
  hn::StoreU(hn::NegMulAdd(x2, s, hn::Mul(x1, c)), d, lo);  // x1*cos - x2*sin
  hn::StoreU(hn::MulAdd(x1, s, hn::Mul(x2, c)), d, hi);     // x2*cos + x1*sin
}

void RopeNeoxImpl(float* head, size_t head_dim, const float* cos, const float* sin) {
  const size_t half = head_dim / 2;
  const DF df;
  const size_t N = hn::Lanes(df);
  size_t j = 0;
  for (; j + N <= half; j += N) RotatePairs(df, head + j, head + half + j, cos + j, sin + j);
  for (; j < half; ++j) RotatePairs(D1(), head + j, head + half + j, cos + j, sin + j);
}

float MaxImpl(const float* x, size_t n) {
  const DF df;
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
void ScaleInPlace(float* x, size_t n, float factor) {
  const DF df;
  const size_t N = hn::Lanes(df);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(hn::LoadU(df, x + i), hn::Set(df, factor)), df, x + i);
  for (; i < n; ++i) x[i] *= factor;
}

void SoftmaxImpl(float* x, size_t n) {
  if (n == 0) return;
  const float max = MaxImpl(x, n);
  const DF df;
  const size_t N = hn::Lanes(df);
  auto sum = hn::Zero(df);
  size_t i = 0;
  for (; i + N <= n; i += N) sum = hn::Add(sum, ExpShifted(df, x + i, max));
  float total = SumLanes(df, sum);
  for (; i < n; ++i) total += hn::GetLane(ExpShifted(D1(), x + i, max));
  ScaleInPlace(x, n, 1.0f / total);
}

// silu(g) * u with the sigmoid evaluated from exp(-|g|), which never overflows: for g >= 0,
// sigmoid = 1 / (1 + e); for g < 0, sigmoid = e / (1 + e).
template <class D>
HWY_INLINE void SiluMulLanes(D d, const float* gate, const float* up, float* out) {
  const auto g = hn::LoadU(d, gate);
  const auto u = hn::LoadU(d, up);
  const auto one = hn::Set(d, 1.0f);
  const auto e = hn::Exp(d, hn::Neg(hn::Abs(g)));
  const auto numerator = hn::IfThenElse(hn::Lt(g, hn::Zero(d)), e, one);
  const auto sigmoid = hn::Div(numerator, hn::Add(one, e));
  hn::StoreU(hn::Mul(hn::Mul(g, sigmoid), u), d, out);
}

void SiluMulImpl(const float* gate, const float* up, size_t n, float* out) {
  const DF df;
  const size_t N = hn::Lanes(df);
  size_t i = 0;
  for (; i + N <= n; i += N) SiluMulLanes(df, gate + i, up + i, out + i);
  for (; i < n; ++i) SiluMulLanes(D1(), gate + i, up + i, out + i);
}

void AttendHeadImpl(const float* q, const float* k, const float* v, size_t n_ctx, size_t head_dim,
                    size_t kv_stride, float scale, float* scratch, float* out) {
  for (size_t t = 0; t < n_ctx; ++t) scratch[t] = scale * DotF32(q, k + t * kv_stride, head_dim);
  SoftmaxImpl(scratch, n_ctx);
  for (size_t d = 0; d < head_dim; ++d) out[d] = 0.0f;
  for (size_t t = 0; t < n_ctx; ++t) AxpyImpl(scratch[t], v + t * kv_stride, out, head_dim);
}

}  // namespace quantlab::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace quantlab::kernels {

HWY_EXPORT(TargetNameImpl);
HWY_EXPORT(ConvertToF32Impl);
HWY_EXPORT(DotImpl);
HWY_EXPORT(AxpyImpl);
HWY_EXPORT(RmsNormImpl);
HWY_EXPORT(RopeNeoxImpl);
HWY_EXPORT(SoftmaxImpl);
HWY_EXPORT(SiluMulImpl);
HWY_EXPORT(AttendHeadImpl);

const char* active_target() { return HWY_DYNAMIC_DISPATCH(TargetNameImpl)(); }

void convert_to_f32(DType src, const void* data, size_t n, float* out) {
  QL_CHECK(src == DType::kF32 || src == DType::kF16 || src == DType::kBF16,
           "convert_to_f32: unsupported source dtype");
  HWY_DYNAMIC_DISPATCH(ConvertToF32Impl)(src, data, n, out);
}

float dot(const float* a, const float* b, size_t n) { return HWY_DYNAMIC_DISPATCH(DotImpl)(a, b, n); }

void axpy(float a, const float* x, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(AxpyImpl)(a, x, y, n); }

void rms_norm(const float* x, const float* weight, size_t n, float eps, float* out) {
  HWY_DYNAMIC_DISPATCH(RmsNormImpl)(x, weight, n, eps, out);
}

void rope_neox(float* head, size_t head_dim, const float* cos, const float* sin) {
  HWY_DYNAMIC_DISPATCH(RopeNeoxImpl)(head, head_dim, cos, sin);
}

void softmax(float* x, size_t n) { HWY_DYNAMIC_DISPATCH(SoftmaxImpl)(x, n); }

void silu_mul(const float* gate, const float* up, size_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(SiluMulImpl)(gate, up, n, out);
}

void attend_head(const float* q, const float* k, const float* v, size_t n_ctx, size_t head_dim,
                 size_t kv_stride, float scale, float* scratch, float* out) {
  HWY_DYNAMIC_DISPATCH(AttendHeadImpl)(q, k, v, n_ctx, head_dim, kv_stride, scale, scratch, out);
}

}  // namespace quantlab::kernels
#endif  // HWY_ONCE
