// y = W x for every stored weight format (the decode path). Compiled once per Highway target; matvec
// dispatches once, then everything below is direct calls. Rows are split across the pool; each row is
// computed by the same code whatever the chunking, so results do not depend on the thread count.
//
// Affine rows: y[r] = sum_g scale_g * dot(q_g, x_g) + bias_g * sum(x_g). Activations are permuted into
// decode order (affine_unpack-inl.h) once per call, and pre-scaled so that codes can be converted where
// they sit in their lane: one AND, one int->float conversion and one FMA per 16 codes (AVX-512).
#include "kernels/highway_config.h"  // must precede the hwy includes

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matvec.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <algorithm>
#include <cmath>
#include <vector>

#include "hwy/aligned_allocator.h"
#include "hwy/highway.h"
#include "kernels/affine_unpack-inl.h"
#include "kernels/convert-inl.h"
#include "kernels/kernels.h"
#include "kernels/matrix_checks.h"

HWY_BEFORE_NAMESPACE();
namespace quantlab::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

// Rows per parallel_for chunk: enough work (~64K weights) to amortise the chunk hand-out.
inline size_t MinRowsPerChunk(size_t cols) { return std::max<size_t>(1, 65536 / std::max<size_t>(cols, 1)); }

// Row-independent inputs of an affine matvec: the activations in decode order, pre-scaled for
// CodeInPlace, and the sum of x over each group (zero-padded to padded_groups), which the bias multiplies.
struct AffineActivations {
  hwy::AlignedFreeUniquePtr<float[]> permuted;
  hwy::AlignedFreeUniquePtr<float[]> group_sums;
};

template <int kBits>
AffineActivations PrepareActivations(const AffineLayout& L, const float* x, size_t cols, size_t group) {
  using Unpacker = AffineUnpacker<kBits>;
  AffineActivations a;
  a.permuted = hwy::AllocateAligned<float>(L.padded_cols);
  int shifts[16];
  for (size_t k = 0; k < Unpacker::kCodesPerLane; ++k) shifts[k] = Unpacker::InPlaceShift(k);
  PermuteActivations(L, x, cols, a.permuted.get(), shifts);
  a.group_sums = hwy::AllocateAligned<float>(L.padded_groups);
  for (size_t g = 0; g < L.padded_groups; ++g) {
    float sum = 0.0f;
    for (size_t c = 0; g < L.groups_per_row && c < group; ++c) sum += x[g * group + c];
    a.group_sums[g] = sum;
  }
  return a;
}

// sum_k q_k * x_k over the codes of vector v, per lane. Four (c >= 8) or two partial sums shorten the
// FMA dependency chains.
template <int kBits, class DF>
HWY_INLINE hn::Vec<DF> CodeVectorDot(DF df, const AffineUnpacker<kBits>& unpacker, const uint8_t* row,
                                     size_t v, const float* xp) {
  constexpr size_t kC = AffineUnpacker<kBits>::kCodesPerLane;
  constexpr size_t kChains = kC >= 8 ? 4 : 2;
  // Lanes(df) is a compile-time constant on fixed-width targets: the activation loads then use
  // immediate offsets from one pointer instead of one register per code (GPR pressure).
  const size_t N = hn::Lanes(df);
  const auto lanes = unpacker.Load(row, v);
  const float* xv = xp + v * (N * kC);
  auto t0 = hn::Zero(df), t1 = hn::Zero(df), t2 = hn::Zero(df), t3 = hn::Zero(df);
  Unroll<0, kC>([&](auto k) {
    constexpr size_t K = decltype(k)::value;
    const auto q = unpacker.template CodeInPlace<K>(df, lanes);
    auto& t = (K % kChains == 0) ? t0 : (K % kChains == 1) ? t1 : (K % kChains == 2) ? t2 : t3;
    t = hn::MulAdd(q, hn::LoadU(df, xv + K * N), t);
  });
  return kChains == 4 ? hn::Add(hn::Add(t0, t1), hn::Add(t2, t3)) : hn::Add(t0, t1);
}

// One output: sum_g scale_g * dot(q_g, x_g) + bias_g * sum(x_g). When a group spans whole code vectors
// its scale is one broadcast; when a vector spans several groups each lane gets its group's scale.
template <int kBits>
HWY_INLINE float AffineRowDot(const AffineUnpacker<kBits>& unpacker, const AffineLayout& L,
                              const uint8_t* row, const AffineActivations& x, const float* scales,
                              const float* biases) {
  const DF df;
  const size_t N = hn::Lanes(df);
  const float* xp = x.permuted.get();
  auto acc = hn::Zero(df);
  const size_t vectors_per_group = (size_t{1} << L.group_shift) / L.codes_per_vector;
  if (vectors_per_group >= 1) {
    for (size_t g = 0, v = 0; g < L.groups_per_row; ++g) {
      auto t = CodeVectorDot(df, unpacker, row, v++, xp);
      for (size_t i = 1; i < vectors_per_group; ++i) t = hn::Add(t, CodeVectorDot(df, unpacker, row, v++, xp));
      acc = hn::MulAdd(t, hn::Set(df, scales[g]), acc);
    }
  } else {
    for (size_t v = 0; v < L.vectors_per_row; ++v) {
      acc = hn::MulAdd(CodeVectorDot(df, unpacker, row, v, xp), LaneGroupValues(df, L, scales, v), acc);
    }
  }
  // Biases: a dot over the row's groups; lanes past the last group meet zero group sums.
  const float* sums = x.group_sums.get();
  for (size_t g = 0; g < L.groups_per_row; g += N) {
    acc = hn::MulAdd(hn::LoadU(df, biases + g), hn::LoadU(df, sums + g), acc);
  }
  return SumLanes(df, acc);
}

template <int kBits>
void AffineMatvec(const MatrixView& w, const float* x, float* y, ThreadPool& pool) {
  const AffineUnpacker<kBits> unpacker;
  const AffineLayout L = MakeAffineLayout(w);
  const AffineActivations xa = PrepareActivations<kBits>(L, x, w.cols, static_cast<size_t>(w.group_size));
  pool.parallel_for(w.rows, MinRowsPerChunk(w.cols), [&](size_t begin, size_t end, size_t) {
    AffineRowBuffers& buffers = ThreadRowBuffers();
    buffers.Prepare(L);
    for (size_t first = begin; first < end; first += AffineRowBuffers::kRowBlock) {
      const size_t count = std::min(AffineRowBuffers::kRowBlock, end - first);
      buffers.LoadBlock(w, L, first, count);
      for (size_t i = 0; i < count; ++i) {
        y[first + i] = AffineRowDot(unpacker, L, buffers.Row(w, L, first + i), xa, buffers.scales(L, i),
                                    buffers.biases(L, i));
      }
    }
  });
}

template <typename T>
void FloatMatvec(const MatrixView& w, const float* x, float* y, ThreadPool& pool) {
  const T* data = static_cast<const T*>(w.data);
  pool.parallel_for(w.rows, MinRowsPerChunk(w.cols), [&](size_t begin, size_t end, size_t) {
    for (size_t r = begin; r < end; ++r) y[r] = DotF32(x, data + r * w.cols, w.cols);
  });
}

void MatvecImpl(const MatrixView& w, const float* x, float* y, ThreadPool& pool) {
  switch (w.type) {
    case WeightType::kF32:
      return FloatMatvec<float>(w, x, y, pool);
    case WeightType::kF16:
      return FloatMatvec<hwy::float16_t>(w, x, y, pool);
    case WeightType::kBF16:
      return FloatMatvec<hwy::bfloat16_t>(w, x, y, pool);
    case WeightType::kAffine:
      break;
  }
  switch (w.bits) {
    case 2: return AffineMatvec<2>(w, x, y, pool);
    case 3: return AffineMatvec<3>(w, x, y, pool);
    case 4: return AffineMatvec<4>(w, x, y, pool);
    case 5: return AffineMatvec<5>(w, x, y, pool);
    case 6: return AffineMatvec<6>(w, x, y, pool);
    case 7: return AffineMatvec<7>(w, x, y, pool);
    default: return AffineMatvec<8>(w, x, y, pool);
  }
}

}  // namespace quantlab::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace quantlab::kernels {

HWY_EXPORT(MatvecImpl);

void matvec(const MatrixView& w, const float* x, float* y, ThreadPool& pool) {
  check_matrix_view(w, "matvec");
  HWY_DYNAMIC_DISPATCH(MatvecImpl)(w, x, y, pool);
}

}  // namespace quantlab::kernels
#endif  // HWY_ONCE
