// The 4x4 register-blocked dot-product micro-kernel of prefill attention (query rows x key rows; matmul
// has its own, panel_kernel-inl.h): 16 dot products over K with 16 vector accumulators, each
// one fixed FMA sequence followed by one fixed reduction tree (SumOfFour), so an output does not depend
// on which other rows share its block.
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
  {                                                        \
    const auto a = hn::LoadU(df, xs.row[i] + k);           \
    acc##i##0 = hn::MulAdd(a, w0, acc##i##0);              \
    acc##i##1 = hn::MulAdd(a, w1, acc##i##1);              \
    acc##i##2 = hn::MulAdd(a, w2, acc##i##2);              \
    acc##i##3 = hn::MulAdd(a, w3, acc##i##3);              \
  }
#define QL_STORE_ROW(i) SumOfFour(df, acc##i##0, acc##i##1, acc##i##2, acc##i##3, out + i * kBlock)

// The 16 dot products dot(xs.row[i], ws.row[j]) over [k_begin, k_end), for K split into chunks that
// keep a 4-row block of both operands in L1: the accumulators start at zero (first chunk) or from `acc`
// (16 vectors), and are saved back to `acc` or, after the last chunk, reduced into out[i*4 + j]. Each
// lane runs the same FMA sequence whatever the chunking, so the results do not depend on it. Hand-
// unrolled 4x4: SVE vectors cannot live in arrays, so the accumulators are named variables.
#define QL_RESUME_ROW(i)                                                             \
  auto acc##i##0 = first ? hn::Zero(df) : hn::LoadU(df, acc + (i * 4 + 0) * N);      \
  auto acc##i##1 = first ? hn::Zero(df) : hn::LoadU(df, acc + (i * 4 + 1) * N);      \
  auto acc##i##2 = first ? hn::Zero(df) : hn::LoadU(df, acc + (i * 4 + 2) * N);      \
  auto acc##i##3 = first ? hn::Zero(df) : hn::LoadU(df, acc + (i * 4 + 3) * N)
#define QL_SAVE_ROW(i)                                  \
  hn::StoreU(acc##i##0, df, acc + (i * 4 + 0) * N);     \
  hn::StoreU(acc##i##1, df, acc + (i * 4 + 1) * N);     \
  hn::StoreU(acc##i##2, df, acc + (i * 4 + 2) * N);     \
  hn::StoreU(acc##i##3, df, acc + (i * 4 + 3) * N)

inline HWY_NOINLINE void MicroKernel4x4Chunk(const RowBlock& xs, const RowBlock& ws, size_t k_begin, size_t k_end,
                                             bool first, bool last, float* acc, float* out) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  QL_RESUME_ROW(0);
  QL_RESUME_ROW(1);
  QL_RESUME_ROW(2);
  QL_RESUME_ROW(3);
  for (size_t k = k_begin; k < k_end; k += N) {
    const auto w0 = hn::LoadU(df, ws.row[0] + k);
    const auto w1 = hn::LoadU(df, ws.row[1] + k);
    const auto w2 = hn::LoadU(df, ws.row[2] + k);
    const auto w3 = hn::LoadU(df, ws.row[3] + k);
    QL_FMA_ROW(0)
    QL_FMA_ROW(1)
    QL_FMA_ROW(2)
    QL_FMA_ROW(3)
  }
  if (!last) {
    QL_SAVE_ROW(0);
    QL_SAVE_ROW(1);
    QL_SAVE_ROW(2);
    QL_SAVE_ROW(3);
    return;
  }
  QL_STORE_ROW(0);
  QL_STORE_ROW(1);
  QL_STORE_ROW(2);
  QL_STORE_ROW(3);
}

// out[i*4 + j] = dot(xs.row[i], ws.row[j]) over K (a multiple of the lane count), in one pass.
HWY_INLINE void MicroKernel4x4(const RowBlock& xs, const RowBlock& ws, size_t K, float* out) {
  MicroKernel4x4Chunk(xs, ws, 0, K, /*first=*/true, /*last=*/true, nullptr, out);
}

#undef QL_FMA_ROW
#undef QL_STORE_ROW
#undef QL_RESUME_ROW
#undef QL_SAVE_ROW

}  // namespace quantlab::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // QUANTLAB_KERNELS_MICROKERNEL_INL_H_
