// Per-target helpers shared by the kernel translation units: loading stored f32/f16/bf16 elements as
// f32 vectors (from any alignment), bulk conversion, and a plain f32 dot product. Included once per
// Highway target (the toggle guard below is Highway's per-target include idiom).
#if defined(QUANTLAB_KERNELS_CONVERT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QUANTLAB_KERNELS_CONVERT_INL_H_
#undef QUANTLAB_KERNELS_CONVERT_INL_H_
#else
#define QUANTLAB_KERNELS_CONVERT_INL_H_
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace quantlab::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Targets without a hardware f16 conversion. Highway 1.0.3's emulation there maps infinities and NaNs
// to finite values, so these use F16BitsToF32 instead.
#undef QUANTLAB_KERNELS_SOFT_F16
#if HWY_TARGET == HWY_SSE4 || HWY_TARGET == HWY_SSSE3 || HWY_TARGET == HWY_SCALAR || \
    HWY_TARGET == HWY_EMU128
#define QUANTLAB_KERNELS_SOFT_F16 1
#else
#define QUANTLAB_KERNELS_SOFT_F16 0
#endif

// IEEE binary16 bit patterns (in u32 lanes) to f32, exact for every pattern including subnormals,
// infinities and NaNs (payload kept), as core/half.h's f16_to_f32.
template <class DF>
HWY_INLINE hn::Vec<DF> F16BitsToF32(DF df, hn::Vec<hn::RebindToUnsigned<DF>> h) {
  const hn::RebindToUnsigned<DF> du;
  const hn::RebindToSigned<DF> di;
  const auto sign = hn::ShiftLeft<16>(hn::And(h, hn::Set(du, 0x8000u)));
  const auto abs = hn::And(h, hn::Set(du, 0x7FFFu));
  const auto abs_i = hn::BitCast(di, abs);
  const auto normal = hn::Add(hn::ShiftLeft<13>(abs), hn::Set(du, 112u << 23));  // rebias 15 -> 127
  const auto inf_nan = hn::Or(hn::ShiftLeft<13>(abs), hn::Set(du, 0x7F800000u));
  const auto subnormal =
      hn::BitCast(du, hn::Mul(hn::ConvertTo(df, abs_i), hn::Set(df, 1.0f / 16777216.0f)));  // m * 2^-24
  auto bits = hn::IfThenElse(hn::RebindMask(du, hn::Lt(abs_i, hn::Set(di, 0x400))), subnormal, normal);
  bits = hn::IfThenElse(hn::RebindMask(du, hn::Gt(abs_i, hn::Set(di, 0x7BFF))), inf_nan, bits);
  return hn::BitCast(df, hn::Or(bits, sign));
}

// Loads Lanes(df) stored elements of type T (float, hwy::float16_t or hwy::bfloat16_t) as f32.
template <typename T, class DF>
HWY_INLINE hn::Vec<DF> LoadAsF32(DF df, const T* HWY_RESTRICT p) {
  if constexpr (sizeof(T) == 4) {
    return hn::LoadU(df, p);
  } else if constexpr (QUANTLAB_KERNELS_SOFT_F16 && hwy::IsSame<T, hwy::float16_t>()) {
    const hn::RebindToUnsigned<DF> du;
    const hn::Rebind<uint16_t, DF> d16;
    return F16BitsToF32(df, hn::PromoteTo(du, hn::LoadU(d16, reinterpret_cast<const uint16_t*>(p))));
  } else {
    const hn::Rebind<T, DF> dh;
    return hn::PromoteTo(df, hn::LoadU(dh, p));
  }
}

// One element as a single-lane f32 vector (vector tails). Copied out first: Highway's single-lane
// loads dereference a T*, and tensors in an mmapped file may sit at any byte offset.
template <typename T>
HWY_INLINE hn::Vec<hn::CappedTag<float, 1>> LoadOneAsF32(const T* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return LoadAsF32(hn::CappedTag<float, 1>(), &value);
}

template <typename T>
HWY_INLINE void ConvertTyped(const T* HWY_RESTRICT src, size_t n, float* HWY_RESTRICT out) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(LoadAsF32(df, src + i), df, out + i);
  for (; i < n; ++i) out[i] = hn::GetLane(LoadOneAsF32(src + i));  // tail: the same conversion
}

// out[0, n) = f32(src[0, n)); src is F32, F16 or BF16 (checked by the public entry point).
HWY_INLINE void ConvertToF32Row(DType type, const void* src, size_t n, float* HWY_RESTRICT out) {
  switch (type) {
    case DType::kF16:
      return ConvertTyped(static_cast<const hwy::float16_t*>(src), n, out);
    case DType::kBF16:
      return ConvertTyped(static_cast<const hwy::bfloat16_t*>(src), n, out);
    default:
      return ConvertTyped(static_cast<const float*>(src), n, out);
  }
}

template <class DF>
HWY_INLINE float SumLanes(DF df, hn::Vec<DF> v) {
  return hn::GetLane(hn::SumOfLanes(df, v));
}

// sum_i a[i] * w[i] with w stored as T. Fixed evaluation order for a given n and target: four
// interleaved vector accumulators, then single-lane tail.
// out[j] = sum of the lanes of the j-th vector, for four vectors at once: two interleave-and-add
// steps leave lanes in the repeating pattern a b c d, whose 4-lane blocks are then added. Cheaper than
// four separate horizontal sums, and each row's sum follows one fixed tree whatever the other rows hold.
template <class DF>
HWY_INLINE void SumOfFour(DF df, hn::Vec<DF> a, hn::Vec<DF> b, hn::Vec<DF> c, hn::Vec<DF> d, float* out) {
  const size_t N = hn::Lanes(df);
  if (N == 1) {
    out[0] = hn::GetLane(a), out[1] = hn::GetLane(b), out[2] = hn::GetLane(c), out[3] = hn::GetLane(d);
    return;
  }
#if HWY_TARGET != HWY_SCALAR
  const hn::Repartition<uint64_t, DF> d64;
  const auto ab = hn::Add(hn::InterleaveLower(df, a, b), hn::InterleaveUpper(df, a, b));  // a b a b ...
  const auto cd = hn::Add(hn::InterleaveLower(df, c, d), hn::InterleaveUpper(df, c, d));  // c d c d ...
  const auto abcd = hn::Add(hn::BitCast(df, hn::InterleaveLower(d64, hn::BitCast(d64, ab), hn::BitCast(d64, cd))),
                            hn::BitCast(df, hn::InterleaveUpper(d64, hn::BitCast(d64, ab), hn::BitCast(d64, cd))));
  HWY_ALIGN float lanes[HWY_MAX_BYTES / 4];
  hn::Store(abcd, df, lanes);
  const hn::CappedTag<float, 4> d4;
  auto sum = hn::Load(d4, lanes);
  for (size_t i = 4; i < N; i += 4) sum = hn::Add(sum, hn::Load(d4, lanes + i));
  hn::StoreU(sum, d4, out);
#endif
}

template <typename T>
HWY_INLINE float DotF32(const float* HWY_RESTRICT a, const T* HWY_RESTRICT w, size_t n) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  auto s0 = hn::Zero(df), s1 = hn::Zero(df), s2 = hn::Zero(df), s3 = hn::Zero(df);
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    s0 = hn::MulAdd(hn::LoadU(df, a + i), LoadAsF32(df, w + i), s0);
    s1 = hn::MulAdd(hn::LoadU(df, a + i + N), LoadAsF32(df, w + i + N), s1);
    s2 = hn::MulAdd(hn::LoadU(df, a + i + 2 * N), LoadAsF32(df, w + i + 2 * N), s2);
    s3 = hn::MulAdd(hn::LoadU(df, a + i + 3 * N), LoadAsF32(df, w + i + 3 * N), s3);
  }
  for (; i + N <= n; i += N) s0 = hn::MulAdd(hn::LoadU(df, a + i), LoadAsF32(df, w + i), s0);
  float sum = SumLanes(df, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3)));
  auto tail = hn::Zero(hn::CappedTag<float, 1>());
  for (; i < n; ++i) tail = hn::MulAdd(LoadOneAsF32(a + i), LoadOneAsF32(w + i), tail);
  return sum + hn::GetLane(tail);
}

}  // namespace quantlab::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // QUANTLAB_KERNELS_CONVERT_INL_H_
