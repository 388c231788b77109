// Attention of up to four queries against one KV head: consecutive positions of one head (prefill)
// or heads that share a KV head (decode). Compiled once per Highway target (foreach_target.h
// re-includes this file); each public function dispatches once to the best target the CPU supports.
#include "kernels/highway_config.h"  // must precede the hwy includes

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/attention.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <algorithm>

#include "core/error.h"
#include "hwy/highway.h"
#include "kernels/convert-inl.h"
#include "kernels/kernels.h"
#include "kernels/microkernel-inl.h"
#include "kernels/vector-inl.h"

HWY_BEFORE_NAMESPACE();
namespace quantlab::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

// Attention without the micro-kernel, for head dims that are not a multiple of the lane count.
void AttendQueriesPerQuery(const float* q, size_t q_stride, size_t count, size_t step, const float* k,
                           const float* v, size_t n_ctx, size_t head_dim, size_t kv_stride, float scale,
                           float* scratch, float* out, size_t out_stride) {
  for (size_t i = 0; i < count; ++i) {
    const size_t visible = n_ctx + i * step;
    for (size_t t = 0; t < visible; ++t) scratch[t] = scale * DotF32(q + i * q_stride, k + t * kv_stride, head_dim);
    SoftmaxF32(scratch, visible);
    float* o = out + i * out_stride;
    std::fill(o, o + head_dim, 0.0f);
    for (size_t t = 0; t < visible; ++t) AxpyF32(scratch[t], v + t * kv_stride, o, head_dim);
  }
}

// probs rows i (zero past each query's visible positions) times V: out_i[d0 .. d0 + vectors*N) =
// sum_t p_it v_t, for kQueries (1, 2 or 4) query rows at once so that each value vector is loaded once.
// `vectors` is 4 (up to 16 accumulators) or 1 (the tail of the head dim); every case runs one FMA chain
// per output lane in t order, so the result depends neither on the blocking nor on the other queries.
template <size_t kQueries, size_t kVectors>
HWY_INLINE void WeightedValues(const float* const* probs, size_t total, const float* v, size_t kv_stride,
                               size_t d0, float* const* out) {
  const DF df;
  const size_t N = hn::Lanes(df);
  auto a00 = hn::Zero(df), a01 = hn::Zero(df), a02 = hn::Zero(df), a03 = hn::Zero(df);
  auto a10 = hn::Zero(df), a11 = hn::Zero(df), a12 = hn::Zero(df), a13 = hn::Zero(df);
  auto a20 = hn::Zero(df), a21 = hn::Zero(df), a22 = hn::Zero(df), a23 = hn::Zero(df);
  auto a30 = hn::Zero(df), a31 = hn::Zero(df), a32 = hn::Zero(df), a33 = hn::Zero(df);
  constexpr bool kTwo = kQueries >= 2, kFour = kQueries == 4, kWide = kVectors == 4;
  for (size_t t = 0; t < total; ++t) {
    const float* vt = v + t * kv_stride + d0;
    const auto p0 = hn::Set(df, probs[0][t]);
    const auto p1 = hn::Set(df, probs[kTwo ? 1 : 0][t]);
    const auto p2 = hn::Set(df, probs[kFour ? 2 : 0][t]), p3 = hn::Set(df, probs[kFour ? 3 : 0][t]);
    const auto v0 = hn::LoadU(df, vt);
    a00 = hn::MulAdd(p0, v0, a00);
    if constexpr (kTwo) a10 = hn::MulAdd(p1, v0, a10);
    if constexpr (kFour) a20 = hn::MulAdd(p2, v0, a20), a30 = hn::MulAdd(p3, v0, a30);
    if constexpr (kWide) {
      const auto v1 = hn::LoadU(df, vt + N), v2 = hn::LoadU(df, vt + 2 * N), v3 = hn::LoadU(df, vt + 3 * N);
      a01 = hn::MulAdd(p0, v1, a01), a02 = hn::MulAdd(p0, v2, a02), a03 = hn::MulAdd(p0, v3, a03);
      if constexpr (kTwo) a11 = hn::MulAdd(p1, v1, a11), a12 = hn::MulAdd(p1, v2, a12), a13 = hn::MulAdd(p1, v3, a13);
      if constexpr (kFour) {
        a21 = hn::MulAdd(p2, v1, a21), a22 = hn::MulAdd(p2, v2, a22), a23 = hn::MulAdd(p2, v3, a23);
        a31 = hn::MulAdd(p3, v1, a31), a32 = hn::MulAdd(p3, v2, a32), a33 = hn::MulAdd(p3, v3, a33);
      }
    }
  }
  const auto store = [&](float* o, auto x0, auto x1, auto x2, auto x3) {
    hn::StoreU(x0, df, o + d0);
    if constexpr (kWide) hn::StoreU(x1, df, o + d0 + N), hn::StoreU(x2, df, o + d0 + 2 * N), hn::StoreU(x3, df, o + d0 + 3 * N);
  };
  store(out[0], a00, a01, a02, a03);
  if constexpr (kTwo) store(out[1], a10, a11, a12, a13);
  if constexpr (kFour) store(out[2], a20, a21, a22, a23), store(out[3], a30, a31, a32, a33);
}

// Up to four queries at once (see kernels.h), kQueries = 1 or 2 for that many queries and 4 for three or
// four (a decode step of a model with two query heads per KV head, Qwen3-0.6B's, does not pay for four);
// query i sees n_ctx + i * step positions (step 1: consecutive positions of one head, prefill; step 0:
// heads that share a KV head, decode). Scores by the micro-kernel (queries x 4 keys per call), softmax per query
// over the positions it sees, then the weighted values with each value vector shared by the queries.
// Positions a query does not see get probability 0 and add exact zeros, and every output runs the
// same operations in a block as alone, so decode and prefill agree bit for bit.
template <size_t kQueries>
void AttendQueryBlock(const float* q, size_t q_stride, size_t count, size_t step, const float* k, const float* v,
                      size_t n_ctx, size_t head_dim, size_t kv_stride, float scale, float* scratch, float* out,
                      size_t out_stride) {
  const size_t N = hn::Lanes(DF());
  const size_t total = n_ctx + (count - 1) * step;  // positions the last query sees
  const RowBlock qs = MakeBlock(q, q_stride, 0, count);
  float block[kBlock * kBlock] = {};  // rows past kQueries are never written (nor read)
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
    SoftmaxF32(p, n_ctx + i * step);
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
  if (count == 2) {
    return AttendQueryBlock<2>(q, q_stride, count, step, k, v, n_ctx, head_dim, kv_stride, scale, scratch, out,
                               out_stride);
  }
  AttendQueryBlock<kBlock>(q, q_stride, count, step, k, v, n_ctx, head_dim, kv_stride, scale, scratch, out,
                           out_stride);
}

}  // namespace quantlab::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace quantlab::kernels {

HWY_EXPORT(AttendQueriesImpl);

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
