// MLX affine quantization (the CPU kernel's rule, docs/mlx-format.md §1.2), bit-exact with
// quant::quantize_row_reference. Compiled once per Highway target.
//
// Exactness: min/max are exact in any order; the group parameters are computed with the reference's
// scalar f32 expressions; codes use true vector division (IEEE exact, like the scalar one), clamp, and
// round half to even (by an addition: GroupCodeBytes). Packing is exact integer work.
#include "kernels/highway_config.h"  // must precede the hwy includes

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/affine_quantize.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "hwy/highway.h"
#include "kernels/format.h"
#include "kernels/kernels.h"

HWY_BEFORE_NAMESPACE();
namespace quantlab::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// At most 32 lanes, so the lane count divides every group size (32, 64, 128).
using DQ = hn::CappedTag<float, 32>;

struct GroupFit {
  float scale;
  float bias;
};

// The reference's per-group parameters from the group's min and max (scalar f32, same expressions).
inline GroupFit FitGroup(float lo, float hi, float n_bins) {
  constexpr float kEps = 1e-7f;
  const bool anchor_at_min = std::abs(lo) > std::abs(hi);
  float scale = std::max((hi - lo) / n_bins, kEps);
  scale = anchor_at_min ? scale : -scale;
  const float edge = anchor_at_min ? lo : hi;
  const float q0 = std::rint(edge / scale);
  if (q0 == 0.0f) return {scale, 0.0f};
  return {edge / q0, edge};
}

// The group's min and max, exact in any order.
HWY_INLINE void GroupRange(const float* w, size_t group, float* lo_out, float* hi_out) {
  const DQ d;
  const size_t N = hn::Lanes(d);
  auto lo = hn::LoadU(d, w);
  auto hi = lo;
  for (size_t i = N; i < group; i += N) {
    const auto v = hn::LoadU(d, w + i);
    lo = hn::Min(lo, v);
    hi = hn::Max(hi, v);
  }
  *lo_out = hn::GetLane(hn::MinOfLanes(d, lo));
  *hi_out = hn::GetLane(hn::MaxOfLanes(d, hi));
}

// FitGroup for a batch of groups, one per lane: the same IEEE operations (compare, divide, round half
// to even, select), so the same bits; `count` ≤ lanes, the rest of the lanes padded with a valid range.
HWY_INLINE void FitGroups(float* lo, float* hi, size_t count, float n_bins, float* scale_out, float* bias_out) {
  const DQ d;
  for (size_t i = count; i < hn::Lanes(d); ++i) lo[i] = hi[i] = 1.0f;
  const auto l = hn::Load(d, lo), h = hn::Load(d, hi);
  const auto anchor_at_min = hn::Gt(hn::Abs(l), hn::Abs(h));
  const auto s = hn::Max(hn::Div(hn::Sub(h, l), hn::Set(d, n_bins)), hn::Set(d, 1e-7f));
  const auto scale = hn::IfThenElse(anchor_at_min, s, hn::Neg(s));
  const auto edge = hn::IfThenElse(anchor_at_min, l, h);
  const auto q0 = hn::Round(hn::Div(edge, scale));
  const auto flat = hn::Eq(q0, hn::Zero(d));
  hn::Store(hn::IfThenElse(flat, scale, hn::Div(edge, q0)), d, scale_out);
  hn::Store(hn::IfThenElseZero(hn::Not(flat), edge), d, bias_out);
}

// The group's codes as bytes. q = clamp((w - bias) / scale, 0, top) is rounded half to even by adding
// 1.5·2^23: the sum lies in [2^23, 2^24), where the float spacing is 1, so the addition itself rounds to
// the nearest integer (ties to even) exactly as rint does (and clamping before rounding gives the same
// integer, the bounds being integers); the code is then the low byte of the sum's bits. One add instead
// of a round and a range-checked conversion.
HWY_INLINE void GroupCodeBytes(const float* w, size_t group, float n_bins, float scale_value, float bias_value,
                               uint8_t* codes) {
  const DQ d;
  const hn::RebindToUnsigned<DQ> du;
  const hn::Rebind<uint8_t, DQ> d8;
  const size_t N = hn::Lanes(d);
  const auto scale = hn::Set(d, scale_value);
  const auto bias = hn::Set(d, bias_value);
  const auto zero = hn::Zero(d);
  const auto top = hn::Set(d, n_bins);
  const auto magic = hn::Set(d, 12582912.0f);  // 1.5 * 2^23
  for (size_t i = 0; i < group; i += N) {
    const auto q = hn::Min(hn::Max(hn::Div(hn::Sub(hn::LoadU(d, w + i), bias), scale), zero), top);
    hn::StoreU(hn::TruncateTo(d8, hn::BitCast(du, hn::Add(q, magic))), d8, codes + i);
  }
}

// Packs `count` codes of Bits bits into an LSB-first stream of whole words (count*Bits % 32 == 0), one
// code at a time; the width is a template argument, so the shifts are constants and no branch decides
// when a word is full. The vector packer's tail and the fallback for targets narrower than 8 bytes.
template <int Bits>
void PackCodesScalar(const uint8_t* HWY_RESTRICT codes, size_t count, uint32_t* HWY_RESTRICT words) {
  for (size_t block = 0; block + 32 <= count; block += 32) {
    uint64_t pending = 0;
    int filled = 0;
    uint32_t* out = words + block / 32 * Bits;
#pragma GCC unroll 32
    for (int i = 0; i < 32; ++i) {
      pending |= static_cast<uint64_t>(codes[block + i]) << filled;
      filled += Bits;
      if (filled >= 32) {  // constant per unrolled step
        *out++ = static_cast<uint32_t>(pending);
        pending >>= 32;
        filled -= 32;
      }
    }
  }
}

// The merged u64 lanes are copied out as bytes: their first Bits bytes are the stream's next ones only on
// a little-endian machine (every x86-64 and aarch64 target; the format's words are little-endian too).
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the vector code packer assumes little-endian lanes");

// The same stream from whole vectors of codes: pairs of neighbours merge in lanes twice as wide (a byte
// pair into 2·Bits bits of a u16, those pairs into 4·Bits bits of a u32, then 8·Bits bits of a u64), so
// each u64 lane ends holding eight codes as the stream's next Bits bytes (little-endian, as the
// format's words are); those bytes are copied out with overlapping 8-byte stores, each overwriting the
// previous one's spare bytes. Three shift-and-merge steps per vector instead of a shift and an OR per
// code. The last 32 or more codes go through the scalar packer, so nothing is written past the output.
template <int Bits>
void PackCodesFixed(const uint8_t* HWY_RESTRICT codes, size_t count, uint32_t* HWY_RESTRICT words) {
  size_t i = 0;
#if HWY_TARGET != HWY_SCALAR  // one-lane vectors have no wider lanes to merge into
  const hn::ScalableTag<uint8_t> d8;
  const hn::RepartitionToWide<decltype(d8)> d16;
  const hn::RepartitionToWide<decltype(d16)> d32;
  const hn::RepartitionToWide<decltype(d32)> d64;
  const size_t N = hn::Lanes(d8);
  auto* out = reinterpret_cast<uint8_t*>(words);
  HWY_ALIGN uint64_t lanes[HWY_MAX_BYTES / 8];
  // Vectors stop at least 32 codes before the end: each one's last copy spills up to 8 - Bits bytes
  // past it, which the scalar tail rewrites.
  for (; i + N + 32 <= count; i += N) {
    const auto x16 = hn::BitCast(d16, hn::LoadU(d8, codes + i));
    const auto x32 = hn::BitCast(
        d32, hn::Or(hn::And(x16, hn::Set(d16, 0xFF)), hn::ShiftLeft<Bits>(hn::ShiftRight<8>(x16))));
    const auto x64 = hn::BitCast(
        d64, hn::Or(hn::And(x32, hn::Set(d32, 0xFFFF)), hn::ShiftLeft<2 * Bits>(hn::ShiftRight<16>(x32))));
    hn::Store(hn::Or(hn::And(x64, hn::Set(d64, 0xFFFFFFFFull)), hn::ShiftLeft<4 * Bits>(hn::ShiftRight<32>(x64))),
              d64, lanes);
    uint8_t* dst = out + i / 8 * Bits;
    for (size_t k = 0; k < N / 8; ++k) std::memcpy(dst + k * Bits, &lanes[k], 8);
  }
  i = i / 32 * 32;  // the tail starts at a word (16-byte vectors can end halfway through 32 codes)
#endif
  PackCodesScalar<Bits>(codes + i, count - i, words + i * Bits / 32);
}

void PackCodes(const uint8_t* codes, size_t count, int bits, uint32_t* words) {
  switch (bits) {  // every width of the format table (kernels/format.h); count is a multiple of 32
    case 2: return PackCodesFixed<2>(codes, count, words);
    case 3: return PackCodesFixed<3>(codes, count, words);
    case 4: return PackCodesFixed<4>(codes, count, words);
    case 5: return PackCodesFixed<5>(codes, count, words);
    case 6: return PackCodesFixed<6>(codes, count, words);
    case 7: return PackCodesFixed<7>(codes, count, words);
    case 8: return PackCodesFixed<8>(codes, count, words);
  }
  HWY_ASSERT(false);
}

// Groups go in batches of one per lane: their ranges first (independent reductions the core overlaps),
// then all their fits in vector lanes (instead of a chain of scalar divisions per group), then codes as
// bytes; the batch's codes are packed together (groups never straddle rows and a row's stream is whole
// words, so the batch's codes are one stretch of the output stream).
void AffineQuantizeImpl(const float* w, size_t rows, size_t cols, int bits, int group_size,
                        uint32_t* packed, float* scales, float* biases) {
  const DQ d;
  const size_t batch = hn::Lanes(d);
  const size_t group = static_cast<size_t>(group_size);
  const size_t total = rows * (cols / group);  // one stream of groups
  const size_t group_words = group * static_cast<size_t>(bits) / 32;
  const float n_bins = static_cast<float>((1u << bits) - 1u);
  HWY_ALIGN uint8_t codes[32 * 128];  // a batch of at most 32 groups of at most 128 codes
  HWY_ALIGN float lo[32], hi[32], scale[32], bias[32];  // DQ has at most 32 lanes
  for (size_t g0 = 0; g0 < total; g0 += batch) {
    const size_t count = std::min(batch, total - g0);
    for (size_t j = 0; j < count; ++j) GroupRange(w + (g0 + j) * group, group, &lo[j], &hi[j]);
    FitGroups(lo, hi, count, n_bins, scale, bias);
    for (size_t j = 0; j < count; ++j) {
      scales[g0 + j] = scale[j];
      biases[g0 + j] = bias[j];
      GroupCodeBytes(w + (g0 + j) * group, group, n_bins, scale[j], bias[j], codes + j * group);
    }
    PackCodes(codes, count * group, bits, packed + g0 * group_words);
  }
}

inline float RoundParam(float v, DType dtype) {
  return dtype == DType::kF16 ? round_to_f16(v) : dtype == DType::kBF16 ? round_to_bf16(v) : v;
}

// The codes of affine_quantize (fit from the unrounded parameters), dequantized with the parameters as
// stored; per group the weighted sums run in f32 lanes and are added in double.
void AffineRoundingErrorImpl(const float* w, const float* m, const float* d, size_t cols, int bits, int group_size,
                             DType param_dtype, double* err, double* along) {
  const DQ df;
  const size_t N = hn::Lanes(df), group = static_cast<size_t>(group_size);
  const float n_bins = static_cast<float>((1u << bits) - 1u);
  double err_sum = 0, along_sum = 0;
  for (size_t g0 = 0; g0 < cols; g0 += group) {
    float lo, hi;
    GroupRange(w + g0, group, &lo, &hi);
    const GroupFit fit = FitGroup(lo, hi, n_bins);
    const auto scale = hn::Set(df, fit.scale), bias = hn::Set(df, fit.bias);
    const auto stored_scale = hn::Set(df, RoundParam(fit.scale, param_dtype));
    const auto stored_bias = hn::Set(df, RoundParam(fit.bias, param_dtype));
    const auto zero = hn::Zero(df), top = hn::Set(df, n_bins);
    auto e2 = hn::Zero(df), ed = hn::Zero(df);
    for (size_t i = g0; i < g0 + group; i += N) {
      const auto v = hn::LoadU(df, w + i);
      const auto q = hn::Min(hn::Max(hn::Round(hn::Div(hn::Sub(v, bias), scale)), zero), top);
      const auto e = hn::Sub(v, hn::MulAdd(q, stored_scale, stored_bias));
      const auto me = hn::Mul(hn::LoadU(df, m + i), e);
      e2 = hn::MulAdd(me, e, e2);
      if (d) ed = hn::MulAdd(me, hn::LoadU(df, d + i), ed);
    }
    err_sum += hn::GetLane(hn::SumOfLanes(df, e2));
    along_sum += hn::GetLane(hn::SumOfLanes(df, ed));
  }
  *err = err_sum;
  *along = along_sum;
}

}  // namespace quantlab::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace quantlab::kernels {

HWY_EXPORT(AffineQuantizeImpl);

void affine_quantize(const float* w, size_t rows, size_t cols, int bits, int group_size,
                     uint32_t* packed, float* scales, float* biases) {
  QL_CHECK(is_supported_bits(bits), "affine_quantize: bits {} not in the format table ({})", bits,
           supported_bits_text());
  QL_CHECK(is_supported_group_size(group_size), "affine_quantize: group size {} is not {}", group_size,
           supported_group_sizes_text());
  QL_CHECK(cols % static_cast<size_t>(group_size) == 0,
           "affine_quantize: {} columns are not a multiple of the group size {}", cols, group_size);
  HWY_DYNAMIC_DISPATCH(AffineQuantizeImpl)(w, rows, cols, bits, group_size, packed, scales, biases);
}

HWY_EXPORT(PackCodes);

void pack_codes(const uint8_t* codes, size_t n, int bits, uint32_t* words) {
  QL_CHECK(is_supported_bits(bits) && n % 32 == 0, "pack_codes: {} codes of {} bits", n, bits);
  HWY_DYNAMIC_DISPATCH(PackCodes)(codes, n, bits, words);
}

HWY_EXPORT(AffineRoundingErrorImpl);

void affine_rounding_error(const float* w, const float* m, const float* d, size_t cols, int bits, int group_size,
                           DType param_dtype, double* err, double* along) {
  QL_CHECK(is_supported_bits(bits) && is_supported_group_size(group_size) && cols % static_cast<size_t>(group_size) == 0,
           "affine_rounding_error: bits {}, group size {}, {} columns", bits, group_size, cols);
  HWY_DYNAMIC_DISPATCH(AffineRoundingErrorImpl)(w, m, d, cols, bits, group_size, param_dtype, err, along);
}

}  // namespace quantlab::kernels
#endif  // HWY_ONCE
