// The register-blocked dot-product micro-kernel of attention (query rows x key rows; matmul has its
// own, panel_kernel-inl.h): up to 16 dot products over K with 16 vector accumulators, each one fixed
// FMA sequence followed by one fixed reduction tree (SumOfFour), so an output does not depend on which
// other rows share its block.
#if defined(QUANTLAB_KERNELS_MICROKERNEL_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QUANTLAB_KERNELS_MICROKERNEL_INL_H_
#undef QUANTLAB_KERNELS_MICROKERNEL_INL_H_
#else
#define QUANTLAB_KERNELS_MICROKERNEL_INL_H_
#endif

#include <algorithm>
#include <cstddef>

#include "hwy/highway.h"
#include "kernels/convert-inl.h"

HWY_BEFORE_NAMESPACE();
namespace quantlab::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr size_t kBlock = 4;  // activation rows and weight rows per micro-kernel call

// kRows row pointers; the missing rows of a partial block repeat its last valid row and their results
// are dropped. Shared with the matmul kernel (panel_kernel-inl.h).
template <size_t kRows>
struct RowPointers {
  const float* row[kRows];
  size_t count;
};

template <size_t kRows>
HWY_INLINE RowPointers<kRows> MakeRowPointers(const float* base, size_t stride, size_t first, size_t count) {
  RowPointers<kRows> b;
  b.count = std::min(kRows, count - first);
  for (size_t j = 0; j < kRows; ++j) b.row[j] = base + (first + std::min(j, b.count - 1)) * stride;
  return b;
}

using RowBlock = RowPointers<kBlock>;

inline RowBlock MakeBlock(const float* base, size_t stride, size_t first, size_t count) {
  return MakeRowPointers<kBlock>(base, stride, first, count);
}

#define QL_FMA_ROW(i)                                      \
  if constexpr (i < kQueries) {                            \
    const auto a = hn::LoadU(df, xs.row[i] + k);           \
    acc##i##0 = hn::MulAdd(a, w0, acc##i##0);              \
    acc##i##1 = hn::MulAdd(a, w1, acc##i##1);              \
    acc##i##2 = hn::MulAdd(a, w2, acc##i##2);              \
    acc##i##3 = hn::MulAdd(a, w3, acc##i##3);              \
  }
#define QL_STORE_ROW(i) \
  if constexpr (i < kQueries) SumOfFour(df, acc##i##0, acc##i##1, acc##i##2, acc##i##3, out + i * kBlock);
#define QL_ZERO_ROW(i) \
  auto acc##i##0 = hn::Zero(df), acc##i##1 = acc##i##0, acc##i##2 = acc##i##0, acc##i##3 = acc##i##0;

// out[i*4 + j] = dot(xs.row[i], ws.row[j]) over K (a multiple of the lane count) for the first
// kQueries (1, 2 or 4) rows of xs: each one fixed FMA sequence followed by one fixed reduction tree, the
// same for a row alone (decode, kQueries = 1) as in a block of four (prefill). Hand-unrolled: SVE
// vectors cannot live in arrays, so the accumulators are named variables (unused ones are dead code).
template <size_t kQueries>
HWY_INLINE void MicroKernelQueriesx4(const RowBlock& xs, const RowBlock& ws, size_t K, float* out) {
  static_assert(kQueries == 1 || kQueries == 2 || kQueries == kBlock);
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  QL_ZERO_ROW(0)
  QL_ZERO_ROW(1)
  QL_ZERO_ROW(2)
  QL_ZERO_ROW(3)
  for (size_t k = 0; k < K; k += N) {
    const auto w0 = hn::LoadU(df, ws.row[0] + k);
    const auto w1 = hn::LoadU(df, ws.row[1] + k);
    const auto w2 = hn::LoadU(df, ws.row[2] + k);
    const auto w3 = hn::LoadU(df, ws.row[3] + k);
    QL_FMA_ROW(0)
    QL_FMA_ROW(1)
    QL_FMA_ROW(2)
    QL_FMA_ROW(3)
  }
  QL_STORE_ROW(0)
  QL_STORE_ROW(1)
  QL_STORE_ROW(2)
  QL_STORE_ROW(3)
}

#undef QL_FMA_ROW
#undef QL_STORE_ROW
#undef QL_ZERO_ROW

}  // namespace quantlab::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // QUANTLAB_KERNELS_MICROKERNEL_INL_H_
