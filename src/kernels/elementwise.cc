// Vector kernels over f32 activations: conversion, RMSNorm, RoPE, softmax, SiLU gating, dot and axpy
// (attention is in attention.cc). Compiled once per Highway target (foreach_target.h re-includes this
// file); each public function dispatches once to the best target the CPU supports.
#include "kernels/highway_config.h"  // must precede the hwy includes

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/elementwise.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <cmath>

#include "core/error.h"
#include "core/half.h"
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"
#include "kernels/convert-inl.h"
#include "kernels/kernels.h"
#include "kernels/vector-inl.h"

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

void AxpyImpl(float a, const float* x, float* y, size_t n) { AxpyF32(a, x, y, n); }

// Index of the first NaN or infinity (exponent bits all ones), or n: a vector scan, then the position
// looked up only when something was found.
size_t FirstNonFiniteImpl(const float* v, size_t n) {
  size_t i = 0;
#if HWY_TARGET != HWY_SCALAR
  const hn::ScalableTag<uint32_t> du;
  const size_t N = hn::Lanes(du);
  const auto exponent = hn::Set(du, 0x7f800000u);
  auto any = hn::Zero(du);
  for (; i + N <= n; i += N)
    any = hn::Or(any, hn::VecFromMask(du, hn::Eq(hn::And(hn::LoadU(du, reinterpret_cast<const uint32_t*>(v) + i),
                                                           exponent), exponent)));
  if (!hn::AllFalse(du, hn::Ne(any, hn::Zero(du)))) i = 0;  // found: locate it below, from the start
#endif
  for (; i < n; ++i)
    if (!std::isfinite(v[i])) return i;
  return n;
}

// core/half.h's f32_to_bf16 on whole vectors: round to nearest, ties to even; NaNs quieted.
void ConvertF32ToBf16Impl(const float* in, size_t n, uint16_t* out) {
  size_t i = 0;
#if HWY_TARGET != HWY_SCALAR
  const hn::ScalableTag<uint32_t> du;
  const hn::ScalableTag<int32_t> di;
  const hn::Rebind<uint16_t, decltype(di)> d16;
  const size_t N = hn::Lanes(du);
  for (; i + N <= n; i += N) {
    const auto u = hn::BitCast(du, hn::LoadU(hn::ScalableTag<float>(), in + i));
    const auto nan = hn::Gt(hn::BitCast(di, hn::And(u, hn::Set(du, 0x7fffffffu))), hn::Set(di, 0x7f800000));
    const auto rounded = hn::ShiftRight<16>(
        hn::Add(u, hn::Add(hn::Set(du, 0x7fffu), hn::And(hn::ShiftRight<16>(u), hn::Set(du, 1u)))));
    const auto quiet = hn::Or(hn::ShiftRight<16>(u), hn::Set(du, 0x40u));
    const auto bits = hn::IfThenElse(hn::RebindMask(du, nan), quiet, rounded);
    hn::StoreU(hn::DemoteTo(d16, hn::BitCast(di, bits)), d16, out + i);  // < 2^16: no saturation
  }
#endif
  for (; i < n; ++i) out[i] = f32_to_bf16(in[i]);
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

void SoftmaxImpl(float* x, size_t n) { SoftmaxF32(x, n); }

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

}  // namespace quantlab::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace quantlab::kernels {

HWY_EXPORT(TargetNameImpl);
HWY_EXPORT(ConvertToF32Impl);
HWY_EXPORT(DotImpl);
HWY_EXPORT(AxpyImpl);
HWY_EXPORT(ConvertF32ToBf16Impl);
HWY_EXPORT(FirstNonFiniteImpl);
HWY_EXPORT(RmsNormImpl);
HWY_EXPORT(RopeNeoxImpl);
HWY_EXPORT(SoftmaxImpl);
HWY_EXPORT(SiluMulImpl);

const char* active_target() { return HWY_DYNAMIC_DISPATCH(TargetNameImpl)(); }

void convert_to_f32(DType src, const void* data, size_t n, float* out) {
  QL_CHECK(src == DType::kF32 || src == DType::kF16 || src == DType::kBF16,
           "convert_to_f32: unsupported source dtype");
  HWY_DYNAMIC_DISPATCH(ConvertToF32Impl)(src, data, n, out);
}

float dot(const float* a, const float* b, size_t n) { return HWY_DYNAMIC_DISPATCH(DotImpl)(a, b, n); }

void axpy(float a, const float* x, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(AxpyImpl)(a, x, y, n); }

size_t first_non_finite(const float* values, size_t n) { return HWY_DYNAMIC_DISPATCH(FirstNonFiniteImpl)(values, n); }

size_t convert_to_f32_checked(DType src, const void* data, size_t n, float* out) {
  constexpr size_t kChunk = 4096;  // 16 KB of float32
  const auto* bytes = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; i += kChunk) {
    const size_t m = std::min(kChunk, n - i);
    convert_to_f32(src, bytes + i * dtype_size(src), m, out + i);
    const size_t bad = first_non_finite(out + i, m);
    if (bad != m) return i + bad;
  }
  return n;
}

void convert_f32_to_bf16(const float* in, size_t n, uint16_t* out) {
  HWY_DYNAMIC_DISPATCH(ConvertF32ToBf16Impl)(in, n, out);
}

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

}  // namespace quantlab::kernels
#endif  // HWY_ONCE
