// x86 pieces shared by the int8 kernels (int8_affine.cc: decode, int8_matmul.cc: prefill): the
// target attribute, and the unpacking of 64 codes of any width into bytes in natural order
// (int8_affine.cc's header comment has the VPERMB / VPMULTISHIFTQB scheme). Include only from kernels/.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
// GCC 12 reports its own _mm512_undefined_* pass-through operands (the unmasked forms of VCVTPH2PS,
// VPERMB, VPMULTISHIFTQB, ...) as maybe-uninitialized once inlined (GCC bug 105593); they are not.
#if !defined(__clang__)  // clang has no -Wmaybe-uninitialized (and no such false positive)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "core/dtype.h"
#include "kernels/kernels.h"

#define QL_HAVE_VNNI_KERNEL 1
#define QL_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi")))

namespace quantlab::kernels::int8 {

// VPERMB and VPMULTISHIFTQB controls and the code mask of one width.
struct ChunkTables {
  alignas(64) uint8_t gather[64];
  alignas(64) uint8_t shifts[64];
  alignas(64) uint8_t mask[64];

  explicit ChunkTables(int bits) {
    for (int lane = 0; lane < 8; ++lane) {
      for (int k = 0; k < 8; ++k) {
        gather[lane * 8 + k] = static_cast<uint8_t>(lane * bits + std::min(k, bits - 1));
        shifts[lane * 8 + k] = static_cast<uint8_t>(k * bits);
        mask[lane * 8 + k] = static_cast<uint8_t>((1u << bits) - 1u);
      }
    }
  }
};

QL_VNNI_TARGET inline __m512 LoadParams16(DType type, const uint8_t* p, __mmask16 m) {
  if (type == DType::kF32) return _mm512_maskz_loadu_ps(m, p);
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  if (type == DType::kF16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// The 64 codes of chunk v of a row as bytes in natural order.
template <int kBits>
QL_VNNI_TARGET inline __m512i ChunkCodes(const uint8_t* row, size_t v, __mmask64 load_mask, const ChunkTables& t) {
  const __m512i raw = _mm512_maskz_loadu_epi8(load_mask, row + v * 8 * kBits);
  if constexpr (kBits == 8) {
    return raw;
  } else {
    const __m512i gathered = _mm512_permutexvar_epi8(_mm512_load_si512(t.gather), raw);
    return _mm512_and_si512(_mm512_multishift_epi64_epi8(_mm512_load_si512(t.shifts), gathered),
                            _mm512_load_si512(t.mask));
  }
}

// The mask of the first n (< 16) lanes, or all 16.
inline __mmask16 FirstLanes(size_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }

// The kernels' unit of work at one width: the codes of one step against kVectors·64 activation bytes.
// 4-bit codes go 128 at a time, split into low and high nibbles (two shifts and masks for 64 bytes,
// against VPERMB + VPMULTISHIFTQB + AND per 32 bytes), the activations deinterleaved to match
// (Activations::nibbles); every other width goes 64 codes at a time in natural order.
template <int kBits>
struct Step {
  static constexpr size_t kCodes = kBits == 4 ? 128 : 64;
  static constexpr size_t kBytes = kCodes * kBits / 8;
  static constexpr int kVectors = kBits == 4 ? 2 : 1;
};

// Row r's scales s_g (times times[g] when `times` is not null) and biases b_g − code_offset·s_g (the
// kernel adds code_offset to every code; 0: the biases as stored) as f32, in whole 16-lane vectors: the
// buffers must hold groups_per_row rounded up to 16, and the lanes past the row get zeros. Whole-vector
// stores, because the steps' loads of these values then forward from them; after masked stores they
// waited (on Zen 4 a fifth of the bf16 kernel's time, docs/BENCHMARKS.md).
QL_VNNI_TARGET inline void ConvertRowParams(const MatrixView& w, size_t r, const float* times, float code_offset,
                                            float* scale, float* bias) {
  const size_t groups = w.groups_per_row(), size = dtype_size(w.scale_type);
  const auto* scales = static_cast<const uint8_t*>(w.scales) + r * groups * size;
  const auto* biases = static_cast<const uint8_t*>(w.biases) + r * groups * size;
  const __m512 offset = _mm512_set1_ps(code_offset);
  for (size_t g = 0; g < groups; g += 16) {
    const __mmask16 m = FirstLanes(groups - g);
    const __m512 s = LoadParams16(w.scale_type, scales + g * size, m);
    const __m512 b = LoadParams16(w.scale_type, biases + g * size, m);
    _mm512_storeu_ps(scale + g, times ? _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, times + g)) : s);
    _mm512_storeu_ps(bias + g, code_offset != 0.0f ? _mm512_fnmadd_ps(offset, s, b) : b);
  }
}

// The code vectors of step s of a row (load_mask: the step's bytes, fewer in a row's last step).
template <int kBits>
QL_VNNI_TARGET inline void StepCodes(const uint8_t* row, size_t s, __mmask64 load_mask, const ChunkTables& t,
                                     __m512i* out) {
  if constexpr (kBits == 4) {
    const __m512i raw = _mm512_maskz_loadu_epi8(load_mask, row + s * 64);
    const __m512i nibble = _mm512_set1_epi8(0x0F);
    out[0] = _mm512_and_si512(raw, nibble);
    out[1] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), nibble);
  } else {
    out[0] = ChunkCodes<kBits>(row, s, load_mask, t);
  }
}

// Σ over the step's vectors of codes × activations, into int32 lanes (each lane: one group's codes).
template <int kVectors>
QL_VNNI_TARGET inline __m512i StepDot(const __m512i* codes, const int8_t* x) {
  __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), codes[0], _mm512_loadu_si512(x));
  if constexpr (kVectors == 2) dot = _mm512_dpbusd_epi32(dot, codes[1], _mm512_loadu_si512(x + 64));
  return dot;
}

// Every lane's combined scale in step s: lane i holds the step's codes [i·c, (i+1)·c), c = codes/16, all
// in group (s·codes + i·c) / G, so a step spans codes/G groups of 16·G/codes lanes each (or lies in one).
QL_VNNI_TARGET inline __m512 StepScale(const float* combined, size_t s, size_t step_codes, int group_shift) {
  const size_t first = (s * step_codes) >> group_shift, groups = step_codes >> group_shift;
  if (groups <= 1) return _mm512_set1_ps(combined[first]);
  const __m512i lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i group_of_lane = _mm512_srli_epi32(lanes, groups == 2 ? 3 : 2);  // 8 or 4 lanes per group
  return _mm512_permutexvar_ps(group_of_lane, _mm512_maskz_loadu_ps(FirstLanes(groups), combined + first));
}

// acc + Σ_g b_g·X_g lane-wise: the bias term of a row, folded into its accumulator before the one
// reduction (decode and prefill both, so that they agree bit for bit).
QL_VNNI_TARGET inline __m512 AddBiasTerm(const float* bias, const float* sums, size_t groups, __m512 acc) {
  for (size_t g = 0; g < groups; g += 16) {
    const __mmask16 m = FirstLanes(groups - g);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, bias + g), _mm512_maskz_loadu_ps(m, sums + g), acc);
  }
  return acc;
}

// out[i] = the sum of the lanes of the i-th vector, four rows at once: one fixed tree per output that
// depends on that output's vector only (decode and prefill both reduce through it, bit for bit alike).
QL_VNNI_TARGET inline void ReduceFour(__m512 a, __m512 b, __m512 c, __m512 d, float* out) {
  const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
  const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
  const __m512 abcd = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(ab), _mm512_castps_pd(cd))),
                                    _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(ab), _mm512_castps_pd(cd))));
  const __m128 low = _mm_add_ps(_mm512_castps512_ps128(abcd), _mm512_extractf32x4_ps(abcd, 1));
  const __m128 high = _mm_add_ps(_mm512_extractf32x4_ps(abcd, 2), _mm512_extractf32x4_ps(abcd, 3));
  _mm_storeu_ps(out, _mm_add_ps(low, high));
}

// f(std::integral_constant<int, bits>{}) for an affine width 2..8 (8 for anything else): the one switch
// from a run-time width to the kernels' compile-time ones.
template <class F>
decltype(auto) WithBits(int bits, F&& f) {
  switch (bits) {
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 5: return f(std::integral_constant<int, 5>{});
    case 6: return f(std::integral_constant<int, 6>{});
    case 7: return f(std::integral_constant<int, 7>{});
    default: return f(std::integral_constant<int, 8>{});
  }
}

// log2 of the view's group size (32, 64 or 128): StepScale's shift from a code's index to its group.
inline int GroupShift(const MatrixView& w) {
  int shift = 0;
  while ((size_t{1} << shift) < static_cast<size_t>(w.group_size)) ++shift;
  return shift;
}

// The load mask of `bytes` (<= 64) bytes.
inline __mmask64 FirstBytes(size_t bytes) { return bytes >= 64 ? ~__mmask64(0) : (__mmask64(1) << bytes) - 1; }

}  // namespace quantlab::kernels::int8

#else
#define QL_HAVE_VNNI_KERNEL 0
#endif
