// The matmul (prefill) micro-kernel: kPanelRows decoded weight rows x up to kPanelVecs vectors of
// activation rows ("tokens"). The activations are stored transposed, in panels: for each k, the panel's
// tokens side by side. Each step of k loads V vectors of tokens and broadcasts kPanelRows weights into
// kPanelRows * V accumulators, so an FMA needs half a load and no horizontal sum at the end (the 4x4
// dot-product kernel it replaced needed one load per two FMAs plus 16 reductions per block, and reached
// 53-58 % of the FMA peak in a stand-alone test where this one reached 92-96 %).
//
// Every output Y[t, j] is one FMA chain over k in increasing order, starting from zero, whatever the
// blocking, the K chunking and the thread count.
#if defined(QUANTLAB_KERNELS_PANEL_KERNEL_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QUANTLAB_KERNELS_PANEL_KERNEL_INL_H_
#undef QUANTLAB_KERNELS_PANEL_KERNEL_INL_H_
#else
#define QUANTLAB_KERNELS_PANEL_KERNEL_INL_H_
#endif

#include <algorithm>
#include <cstddef>

#include "hwy/highway.h"
#include "kernels/microkernel-inl.h"

HWY_BEFORE_NAMESPACE();
namespace quantlab::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Accumulators must fit the register file with the V loaded token vectors and one broadcast: x86
// targets below AVX-512 have 16 vector registers (4 x 3 = 12 accumulators), AVX-512, NEON and SVE 32
// (6 x 4 = 24).
#if HWY_ARCH_X86 && HWY_TARGET > HWY_AVX3
constexpr size_t kPanelRows = 4, kPanelVecs = 3;
#else
constexpr size_t kPanelRows = 6, kPanelVecs = 4;
#endif

// kPanelRows weight rows of a tile (a partial block repeats its last row, see RowPointers).
using WeightRows = RowPointers<kPanelRows>;

inline WeightRows MakeWeightRows(const float* base, size_t stride, size_t first, size_t rows) {
  return MakeRowPointers<kPanelRows>(base, stride, first, rows);
}

// Accumulator (r, v) lives at acc[(r * kPanelVecs + v) * lanes] between calls.
#define QL_PANEL_START(r, v)                                                                           \
  auto c##r##v = hn::Zero(df);                                                                         \
  if constexpr (r < kPanelRows && v < V) {                                                             \
    if (!first) c##r##v = hn::Load(df, acc + (r * kPanelVecs + v) * N);                                \
  }
#define QL_PANEL_START_ROW(r) \
  QL_PANEL_START(r, 0) QL_PANEL_START(r, 1) QL_PANEL_START(r, 2) QL_PANEL_START(r, 3)
#define QL_PANEL_FMA(r, v) \
  if constexpr (v < V) c##r##v = hn::MulAdd(b, x##v, c##r##v);
#define QL_PANEL_FMA_ROW(r)                                                                            \
  if constexpr (r < kPanelRows) {                                                                      \
    const auto b = hn::Set(df, ws.row[r][k]);                                                          \
    QL_PANEL_FMA(r, 0) QL_PANEL_FMA(r, 1) QL_PANEL_FMA(r, 2) QL_PANEL_FMA(r, 3)                        \
  }
#define QL_PANEL_SAVE(r, v) \
  if constexpr (r < kPanelRows && v < V) hn::Store(c##r##v, df, acc + (r * kPanelVecs + v) * N);
#define QL_PANEL_SAVE_ROW(r) QL_PANEL_SAVE(r, 0) QL_PANEL_SAVE(r, 1) QL_PANEL_SAVE(r, 2) QL_PANEL_SAVE(r, 3)

// Runs k in [k_begin, k_end) for the kPanelRows x V accumulators: they start at zero (`first`) or from
// `acc`, and end in `acc` (64-byte aligned, kPanelRows * kPanelVecs vectors). `panel` holds for each k
// `panel_stride` floats: V vectors of tokens, then unused lanes. Named accumulators rather than an
// array, since SVE vectors cannot live in arrays; those past kPanelRows or V compile away.
template <size_t V>
HWY_NOINLINE void PanelKernel(const WeightRows& ws, const float* HWY_RESTRICT panel, size_t panel_stride,
                              size_t k_begin, size_t k_end, bool first, float* HWY_RESTRICT acc) {
  static_assert(V >= 1 && V <= kPanelVecs);
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  QL_PANEL_START_ROW(0)
  QL_PANEL_START_ROW(1)
  QL_PANEL_START_ROW(2)
  QL_PANEL_START_ROW(3)
  QL_PANEL_START_ROW(4)
  QL_PANEL_START_ROW(5)
  for (size_t k = k_begin; k < k_end; ++k) {
    const float* p = panel + k * panel_stride;
    // Loads of vectors past V are never used and compile away.
    const auto x0 = hn::Load(df, p);
    const auto x1 = hn::Load(df, p + std::min<size_t>(1, V - 1) * N);
    const auto x2 = hn::Load(df, p + std::min<size_t>(2, V - 1) * N);
    const auto x3 = hn::Load(df, p + std::min<size_t>(3, V - 1) * N);
    QL_PANEL_FMA_ROW(0)
    QL_PANEL_FMA_ROW(1)
    QL_PANEL_FMA_ROW(2)
    QL_PANEL_FMA_ROW(3)
    QL_PANEL_FMA_ROW(4)
    QL_PANEL_FMA_ROW(5)
  }
  QL_PANEL_SAVE_ROW(0)
  QL_PANEL_SAVE_ROW(1)
  QL_PANEL_SAVE_ROW(2)
  QL_PANEL_SAVE_ROW(3)
  QL_PANEL_SAVE_ROW(4)
  QL_PANEL_SAVE_ROW(5)
}

#undef QL_PANEL_START
#undef QL_PANEL_START_ROW
#undef QL_PANEL_FMA
#undef QL_PANEL_FMA_ROW
#undef QL_PANEL_SAVE
#undef QL_PANEL_SAVE_ROW

}  // namespace quantlab::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // QUANTLAB_KERNELS_PANEL_KERNEL_INL_H_
