// The synthetic-weight generator's vector kernel (kernels/synth_normal.h has the definition). Compiled
// once per Highway target; 64-bit lanes throughout: the counter, splitmix64, the table gathers and the
// double arithmetic, demoted to float at the end.
#include "kernels/highway_config.h"  // must precede the hwy includes

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/synth_normal.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <cmath>

#include "hwy/highway.h"
#include "kernels/synth_normal.h"

HWY_BEFORE_NAMESPACE();
namespace quantlab::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET != HWY_SCALAR
using DU = hn::ScalableTag<uint64_t>;
using VU = hn::Vec<DU>;

// v · k mod 2⁶⁴. AVX-512 (DQ) multiplies 64-bit lanes; elsewhere from three 32x32→64 products:
// lo·lo + ((hi(v)·lo(k) + lo(v)·hi(k)) << 32).
HWY_INLINE VU MulConstant(DU du, VU v, uint64_t k) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
  return v * hn::Set(du, k);
#else
  const hn::Repartition<uint32_t, DU> d32;
  const auto k_lo = hn::BitCast(d32, hn::Set(du, k & 0xffffffffull));
  const auto k_hi = hn::BitCast(d32, hn::Set(du, k >> 32));
  const VU lo_lo = hn::MulEven(hn::BitCast(d32, v), k_lo);
  const VU hi_lo = hn::MulEven(hn::BitCast(d32, hn::ShiftRight<32>(v)), k_lo);
  const VU lo_hi = hn::MulEven(hn::BitCast(d32, v), k_hi);
  return hn::Add(lo_lo, hn::ShiftLeft<32>(hn::Add(hi_lo, lo_hi)));
#endif
}

HWY_INLINE VU Mix64(DU du, VU x) {
  x = MulConstant(du, hn::Xor(x, hn::ShiftRight<30>(x)), 0xbf58476d1ce4e5b9ull);
  x = MulConstant(du, hn::Xor(x, hn::ShiftRight<27>(x)), 0x94d049bb133111ebull);
  return hn::Xor(x, hn::ShiftRight<31>(x));
}
#endif

void SynthNormalFillImpl(const SynthNormalRun& run, const SynthNormalTable& table, size_t n, float* out) {
  size_t i = 0;
#if HWY_TARGET != HWY_SCALAR
  const DU du;
  const hn::Rebind<double, DU> dd;
  const hn::Rebind<int64_t, DU> di;
  const hn::Rebind<float, DU> df;  // half-width: one float per 64-bit lane
  const size_t N = hn::Lanes(du);
  VU counter = hn::Add(hn::Set(du, run.base), MulConstant(du, hn::Add(hn::Iota(du, 0), hn::Set(du, 1)), kSplitMixGamma));
  const VU step = hn::Set(du, static_cast<uint64_t>(N) * kSplitMixGamma);
  const auto one_bits = hn::Set(du, 0x3ff0000000000000ull);
  const auto one = hn::Set(dd, 1.0);
  const auto scale = hn::Set(dd, static_cast<double>(run.scale));
  const auto magnitude = hn::Set(dd, static_cast<double>(run.outlier_magnitude));
  const auto threshold = hn::Set(di, static_cast<int64_t>(run.outlier_threshold));
  for (; i + N <= n; i += N) {
    const VU bits = Mix64(du, counter);
    counter = hn::Add(counter, step);
    const auto bucket = hn::BitCast(di, hn::ShiftRight<64 - kSynthBucketBits>(bits));
    // u·2⁻²⁰ exactly: the 20 bits as the mantissa of a double in [1, 2), minus one.
    const VU mantissa = hn::ShiftLeft<32>(hn::And(hn::ShiftRight<32>(bits), hn::Set(du, 0xfffffull)));
    const auto frac = hn::Sub(hn::BitCast(dd, hn::Or(mantissa, one_bits)), one);
    const auto deviate = hn::Add(hn::GatherIndex(dd, table.value, bucket),
                                 hn::Mul(frac, hn::GatherIndex(dd, table.delta, bucket)));
    auto v = hn::Mul(hn::PromoteTo(dd, hn::DemoteTo(df, deviate)), scale);  // exact: float x float in double
    const auto low = hn::BitCast(di, hn::And(bits, hn::Set(du, 0xffffffffull)));
    v = hn::IfThenElse(hn::RebindMask(dd, hn::Lt(low, threshold)), hn::CopySign(magnitude, v), v);
    hn::StoreU(hn::DemoteTo(df, v), df, out + i);
  }
#endif
  if (i < n) {  // the tail: the definition itself
    SynthNormalRun rest = run;
    rest.base = run.base + static_cast<uint64_t>(i) * kSplitMixGamma;
    synth_normal_fill_reference(rest, table, n - i, out + i);
  }
}

}  // namespace quantlab::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace quantlab::kernels {

HWY_EXPORT(SynthNormalFillImpl);

float synth_normal_deviate(uint64_t bits, const SynthNormalTable& table) {
  const uint64_t bucket = bits >> (64 - kSynthBucketBits);
  const double frac = static_cast<double>((bits >> 32) & 0xfffff) * 0x1p-20;
  return static_cast<float>(table.value[bucket] + frac * table.delta[bucket]);
}

void synth_normal_fill_reference(const SynthNormalRun& run, const SynthNormalTable& table, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    const uint64_t bits = mix64(run.base + static_cast<uint64_t>(i + 1) * kSplitMixGamma);
    // float x float is exact in double: one rounding, as a float multiply gives.
    float v = static_cast<float>(static_cast<double>(run.scale) * synth_normal_deviate(bits, table));
    if (static_cast<uint32_t>(bits) < run.outlier_threshold) v = std::copysign(run.outlier_magnitude, v);
    out[i] = v;
  }
}

void synth_normal_fill(const SynthNormalRun& run, const SynthNormalTable& table, size_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(SynthNormalFillImpl)(run, table, n, out);
}

}  // namespace quantlab::kernels
#endif  // HWY_ONCE
