// Vector kernels over f32 activations: conversion, RMSNorm, RoPE, softmax, SiLU gating, dot, axpy and
// attention of up to four queries of one head. Compiled once per Highway target (foreach_target.h re-includes this file);
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
#include "kernels/microkernel-inl.h"

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

// Attention without the micro-kernel, for head dims that are not a multiple of the lane count.
void AttendQueriesPerQuery(const float* q, size_t q_stride, size_t count, size_t step, const float* k,
                           const float* v, size_t n_ctx, size_t head_dim, size_t kv_stride, float scale,
                           float* scratch, float* out, size_t out_stride) {
  for (size_t i = 0; i < count; ++i) {
    const size_t visible = n_ctx + i * step;
    for (size_t t = 0; t < visible; ++t) scratch[t] = scale * DotF32(q + i * q_stride, k + t * kv_stride, head_dim);
    SoftmaxImpl(scratch, visible);
    float* o = out + i * out_stride;
    std::fill(o, o + head_dim, 0.0f);
    for (size_t t = 0; t < visible; ++t) AxpyImpl(scratch[t], v + t * kv_stride, o, head_dim);
  }
}

// probs rows i (zero past each query's visible positions) times V: out_i[d0 .. d0 + vectors*N) =
// sum_t p_it v_t, for kQueries (1 or 4) query rows at once so that each value vector is loaded once.
// `vectors` is 4 (16 accumulators) or 1 (the tail of the head dim); every case runs one FMA chain per
// output lane in t order, so the result depends neither on the blocking nor on the other queries.
template <size_t kQueries, size_t kVectors>
HWY_INLINE void WeightedValues(const float* const* probs, size_t total, const float* v, size_t kv_stride,
                               size_t d0, float* const* out) {
  const DF df;
  const size_t N = hn::Lanes(df);
  auto a00 = hn::Zero(df), a01 = hn::Zero(df), a02 = hn::Zero(df), a03 = hn::Zero(df);
  auto a10 = hn::Zero(df), a11 = hn::Zero(df), a12 = hn::Zero(df), a13 = hn::Zero(df);
  auto a20 = hn::Zero(df), a21 = hn::Zero(df), a22 = hn::Zero(df), a23 = hn::Zero(df);
  auto a30 = hn::Zero(df), a31 = hn::Zero(df), a32 = hn::Zero(df), a33 = hn::Zero(df);
  constexpr bool kFour = kQueries == 4;
  for (size_t t = 0; t < total; ++t) {
    const float* vt = v + t * kv_stride + d0;
    const auto p0 = hn::Set(df, probs[0][t]);
    const auto v0 = hn::LoadU(df, vt);
    a00 = hn::MulAdd(p0, v0, a00);
    if constexpr (kFour) {
      const auto p1 = hn::Set(df, probs[1][t]), p2 = hn::Set(df, probs[2][t]), p3 = hn::Set(df, probs[3][t]);
      a10 = hn::MulAdd(p1, v0, a10), a20 = hn::MulAdd(p2, v0, a20), a30 = hn::MulAdd(p3, v0, a30);
      if constexpr (kVectors == 4) {
        const auto v1 = hn::LoadU(df, vt + N), v2 = hn::LoadU(df, vt + 2 * N), v3 = hn::LoadU(df, vt + 3 * N);
        a01 = hn::MulAdd(p0, v1, a01), a11 = hn::MulAdd(p1, v1, a11), a21 = hn::MulAdd(p2, v1, a21), a31 = hn::MulAdd(p3, v1, a31);
        a02 = hn::MulAdd(p0, v2, a02), a12 = hn::MulAdd(p1, v2, a12), a22 = hn::MulAdd(p2, v2, a22), a32 = hn::MulAdd(p3, v2, a32);
        a03 = hn::MulAdd(p0, v3, a03), a13 = hn::MulAdd(p1, v3, a13), a23 = hn::MulAdd(p2, v3, a23), a33 = hn::MulAdd(p3, v3, a33);
      }
    } else if constexpr (kVectors == 4) {
      a01 = hn::MulAdd(p0, hn::LoadU(df, vt + N), a01);
      a02 = hn::MulAdd(p0, hn::LoadU(df, vt + 2 * N), a02);
      a03 = hn::MulAdd(p0, hn::LoadU(df, vt + 3 * N), a03);
    }
  }
  hn::StoreU(a00, df, out[0] + d0);
  if constexpr (kVectors == 4) {
    hn::StoreU(a01, df, out[0] + d0 + N), hn::StoreU(a02, df, out[0] + d0 + 2 * N);
    hn::StoreU(a03, df, out[0] + d0 + 3 * N);
  }
  if constexpr (kFour) {
    hn::StoreU(a10, df, out[1] + d0), hn::StoreU(a20, df, out[2] + d0), hn::StoreU(a30, df, out[3] + d0);
    if constexpr (kVectors == 4) {
      hn::StoreU(a11, df, out[1] + d0 + N), hn::StoreU(a21, df, out[2] + d0 + N), hn::StoreU(a31, df, out[3] + d0 + N);
      hn::StoreU(a12, df, out[1] + d0 + 2 * N), hn::StoreU(a22, df, out[2] + d0 + 2 * N);
      hn::StoreU(a32, df, out[3] + d0 + 2 * N);
      hn::StoreU(a13, df, out[1] + d0 + 3 * N), hn::StoreU(a23, df, out[2] + d0 + 3 * N);
      hn::StoreU(a33, df, out[3] + d0 + 3 * N);
    }
  }
}

// Up to four queries at once (see kernels.h), kQueries = 1 for one query and 4 otherwise; query i sees
// n_ctx + i * step positions (step 1: consecutive positions of one head, prefill; step 0: heads that
// share a KV head, decode). Scores by the micro-kernel (queries x 4 keys per call), softmax per query
// over the positions it sees, then the weighted values with each value vector shared by the queries.
// Positions a query does not see get probability 0 and add exact zeros, and every output runs the
// same operations in a block of four as alone, so decode and prefill agree bit for bit.
template <size_t kQueries>
void AttendQueryBlock(const float* q, size_t q_stride, size_t count, size_t step, const float* k, const float* v,
                      size_t n_ctx, size_t head_dim, size_t kv_stride, float scale, float* scratch, float* out,
                      size_t out_stride) {
  const size_t N = hn::Lanes(DF());
  const size_t total = n_ctx + (count - 1) * step;  // positions the last query sees
  const RowBlock qs = MakeBlock(q, q_stride, 0, count);
  float block[kBlock * kBlock];
  for (size_t t = 0; t < total; t += kBlock) {
    const RowBlock ks = MakeBlock(k, kv_stride, t, total);
    MicroKernelQueriesx4<kQueries>(qs, ks, head_dim, block);
    for (size_t i = 0; i < count; ++i)
      for (size_t j = 0; j < ks.count; ++j) scratch[i * total + t + j] = scale * block[i * kBlock + j];
  }
  const float* probs[kBlock];
  float* outs[kBlock];
  for (size_t i = 0; i < kBlock; ++i) {
    const size_t row = std::min(i, count - 1);  // a partial block repeats its last query
    probs[i] = scratch + row * total;
    outs[i] = out + row * out_stride;
  }
  for (size_t i = 0; i < count; ++i) {
    float* p = scratch + i * total;
    SoftmaxImpl(p, n_ctx + i * step);
    std::fill(p + n_ctx + i * step, p + total, 0.0f);
  }
  size_t d0 = 0;
  for (; d0 + 4 * N <= head_dim; d0 += 4 * N) WeightedValues<kQueries, 4>(probs, total, v, kv_stride, d0, outs);
  for (; d0 < head_dim; d0 += N) WeightedValues<kQueries, 1>(probs, total, v, kv_stride, d0, outs);
}

void AttendQueriesImpl(const float* q, size_t q_stride, size_t count, size_t step, const float* k, const float* v,
                       size_t n_ctx, size_t head_dim, size_t kv_stride, float scale, float* scratch, float* out,
                       size_t out_stride) {
  if (head_dim % hn::Lanes(DF()) != 0) {
    return AttendQueriesPerQuery(q, q_stride, count, step, k, v, n_ctx, head_dim, kv_stride, scale, scratch, out,
                                 out_stride);
  }
  if (count == 1) {
    return AttendQueryBlock<1>(q, q_stride, count, step, k, v, n_ctx, head_dim, kv_stride, scale, scratch, out,
                               out_stride);
  }
  AttendQueryBlock<kBlock>(q, q_stride, count, step, k, v, n_ctx, head_dim, kv_stride, scale, scratch, out,
                           out_stride);
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
HWY_EXPORT(AttendQueriesImpl);

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
  attend_queries(q, head_dim, 1, k, v, n_ctx, head_dim, kv_stride, scale, scratch, out, head_dim);
}

void attend_queries(const float* q, size_t q_stride, size_t count, const float* k, const float* v, size_t n_ctx,
                    size_t head_dim, size_t kv_stride, float scale, float* scratch, float* out, size_t out_stride) {
  QL_CHECK(count >= 1 && count <= 4 && n_ctx >= 1, "attend_queries: {} queries, {} positions", count, n_ctx);
  HWY_DYNAMIC_DISPATCH(AttendQueriesImpl)(q, q_stride, count, /*step=*/1, k, v, n_ctx, head_dim, kv_stride, scale,
                                          scratch, out, out_stride);
}

void attend_heads(const float* q, size_t q_stride, size_t count, const float* k, const float* v, size_t n_ctx,
                  size_t head_dim, size_t kv_stride, float scale, float* scratch, float* out, size_t out_stride) {
  QL_CHECK(count >= 1 && count <= 4 && n_ctx >= 1, "attend_heads: {} heads, {} positions", count, n_ctx);
  HWY_DYNAMIC_DISPATCH(AttendQueriesImpl)(q, q_stride, count, /*step=*/0, k, v, n_ctx, head_dim, kv_stride, scale,
                                          scratch, out, out_stride);
}

}  // namespace quantlab::kernels
#endif  // HWY_ONCE
