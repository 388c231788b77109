// The bf16 path of affine matrices: activation rounding, the scalar reference, and the AVX512-BF16
// decode kernel (bf16_affine.h has the arithmetic). Decode runs one row at a time, like the int8 kernel
// (whose int8_x86.h pieces it reuses): per step of 64 or 128 codes, the codes as bfloat16 words, two or
// four VDPBF16PS against the rounded activations and one FMA with the lanes' group scales; then the
// bias term and one reduction per four rows.
#include "kernels/bf16_affine.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "kernels/affine_reference.h"
#include "kernels/int8_affine.h"
#include "kernels/int8_x86.h"

namespace quantlab::kernels::bf16 {

namespace {

// The kernel's code order within one step (positions of a span of 64 or 128 codes; Step* below):
// 4-bit: four vectors, vector j holding codes 4k + j; other widths: per 16 codes (one 128-bit lane of
// the byte unpacks), the first 8 in the first vector and the last 8 in the second.
size_t Order4(size_t p) { return p % 4 * 32 + p / 4; }
size_t OrderOther(size_t p) { return (p % 16 / 8) * 32 + p / 16 * 8 + p % 8; }

std::vector<uint16_t> Reordered(const std::vector<uint16_t>& x, size_t span, size_t (*order)(size_t)) {
  std::vector<uint16_t> out(x.size(), 0);
  for (size_t i = 0; i + span <= x.size(); i += span)
    for (size_t p = 0; p < span; ++p) out[i + order(p)] = x[i + p];
  return out;
}

}  // namespace

void prepare_activations(const float* x, size_t cols, size_t group_size, Activations& a) {
  QL_CHECK(group_size > 0 && cols % group_size == 0, "bf16 activations: {} columns, group size {}", cols, group_size);
  a.cols = cols;
  a.group_size = group_size;
  const size_t groups = cols / group_size;
  // Zero padding: the kernel's last step reads whole 64- or 128-value steps (codes past the row are
  // masked to zero, and so are these values), and its per-group vectors are read without masks.
  a.x.assign((cols + 127) / 128 * 128 + 64, 0);
  a.sum.assign((groups + 15) / 16 * 16 + 16, 0.0f);
  for (size_t g = 0; g < groups; ++g) {
    float sum = 0.0f;
    for (size_t i = g * group_size; i < (g + 1) * group_size; ++i) {
      a.x[i] = f32_to_bf16(x[i]);
      sum += bf16_to_f32(a.x[i]);
    }
    a.sum[g] = sum;
  }
  a.order4 = Reordered(a.x, 128, Order4);
  a.order_other = Reordered(a.x, 64, OrderOther);
}

std::vector<float> rounded_activations(const float* x, size_t n) {
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = round_to_bf16(x[i]);
  return out;
}

double reference_row(const MatrixView& w, size_t row, const Activations& a) {
  QL_CHECK(w.type == WeightType::kAffine && a.cols == w.cols && a.group_size == static_cast<size_t>(w.group_size),
           "bf16 reference: activations do not match the matrix");
  const size_t words = w.packed_words_per_row(), groups = w.groups_per_row(), param = dtype_size(w.scale_type);
  std::vector<uint32_t> packed(words);
  std::memcpy(packed.data(), static_cast<const uint8_t*>(w.data) + row * words * 4, words * 4);
  std::vector<uint8_t> codes(w.cols);
  unpack_codes_reference(packed.data(), w.cols, w.bits, codes.data());
  std::vector<float> scales(groups), biases(groups);
  convert_to_f32(w.scale_type, static_cast<const uint8_t*>(w.scales) + row * groups * param, groups, scales.data());
  convert_to_f32(w.scale_type, static_cast<const uint8_t*>(w.biases) + row * groups * param, groups, biases.data());
  double y = 0.0;
  for (size_t g = 0; g < groups; ++g) {
    double dot = 0.0;
    for (size_t i = g * a.group_size; i < (g + 1) * a.group_size; ++i) dot += codes[i] * double(bf16_to_f32(a.x[i]));
    y += scales[g] * dot + double(biases[g]) * a.sum[g];
  }
  return y;
}

namespace {
std::atomic<bool> kernel_allowed{true};
}

void allow_kernel(bool allowed) { kernel_allowed = allowed; }

#if QL_HAVE_VNNI_KERNEL

#define QL_BF16_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi,avx512bf16")))

bool kernel_available() {
  static const bool supported = int8::vnni_available() && __builtin_cpu_supports("avx512bf16");
  return supported && kernel_allowed;
}

namespace {

using int8::ChunkTables;
using int8::FirstBytes;

// One row's group parameters as f32: the scales and the biases with the code offset folded in.
struct RowParams {
  std::vector<float> scale;
  std::vector<float> bias;
};

// The offset the kernel adds to each code (the bfloat16 bits 0x4300 | q are 128 + q for q < 128; 8-bit
// codes are split so that they get it too), taken back out of the bias term.
constexpr float kCodeOffset = 128.0f;

// Converts row r's scales and biases, the code offset folded into the biases (int8_x86.h).
QL_BF16_TARGET void LoadRowParams(const MatrixView& w, size_t r, RowParams& out) {
  int8::ConvertRowParams(w, r, nullptr, kCodeOffset, out.scale.data(), out.bias.data());
}

// The steps: each turns one span of codes into bfloat16 vectors (128 + q: the bits 0x4300 | q, one OR
// and no conversion; at 8 bits the low 7 bits that way and the top bit apart) and dots them with the
// activations in the same order (Activations::order*). In every step, lane i of the result holds the
// codes [i·c, (i+1)·c) of the span (c = span / 16, in another order), so a group of 32 covers whole
// lanes and int8's StepScale spreads the scales. Only in-lane shuffles below 8 bits: Zen 4 splits
// 512-bit lane-crossing ones.

// 128 4-bit codes from 64 bytes: word k holds codes 4k .. 4k+3 as nibbles; vector j takes nibble j.
QL_BF16_TARGET inline __m512 Step4(const uint8_t* row, size_t s, __mmask64 load_mask, const __m512i* x) {
  const __m512i words = _mm512_maskz_loadu_epi8(load_mask, row + s * 64);
  const __m512i nibble = _mm512_set1_epi16(0x000F), exponent = _mm512_set1_epi16(0x4300);
  constexpr int kAndOr = 0xEA;  // ternary logic (A & B) | C
  const __m512i c0 = _mm512_ternarylogic_epi32(words, nibble, exponent, kAndOr);
  const __m512i c1 = _mm512_ternarylogic_epi32(_mm512_srli_epi16(words, 4), nibble, exponent, kAndOr);
  const __m512i c2 = _mm512_ternarylogic_epi32(_mm512_srli_epi16(words, 8), nibble, exponent, kAndOr);
  const __m512i c3 = _mm512_or_si512(_mm512_srli_epi16(words, 12), exponent);
  // Two chains of two: VDPBF16PS has 6 cycles of latency on Zen 4.
  const __m512 even = _mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_setzero_ps(), (__m512bh)c0,
                                                        (__m512bh)_mm512_loadu_si512(x + 4 * s)),
                                       (__m512bh)c2, (__m512bh)_mm512_loadu_si512(x + 4 * s + 2));
  const __m512 odd = _mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_setzero_ps(), (__m512bh)c1,
                                                       (__m512bh)_mm512_loadu_si512(x + 4 * s + 1)),
                                      (__m512bh)c3, (__m512bh)_mm512_loadu_si512(x + 4 * s + 3));
  return _mm512_add_ps(even, odd);
}

// 64 8-bit codes, as 128 + (q mod 128) plus 128·(q div 128): bfloat16 holds 128 + a 7-bit value in the
// 0x43 exponent (the unpacks below), and the top bit separately as 2.0 (bits 0x4000) scaled by 64 after
// the products, so q + 128 = (128 + low) + 64·(2·top). In-lane only; converting through f32 (two
// lane-crossing widenings per 16 codes) ran at 0.6 of the exact path's speed in cache.
QL_BF16_TARGET inline __m512 Step8(const uint8_t* row, size_t s, __mmask64 load_mask, const __m512i* x) {
  const __m512i codes = _mm512_maskz_loadu_epi8(load_mask, row + s * 64);
  const __m512i low = _mm512_and_si512(codes, _mm512_set1_epi8(0x7F)), exponent = _mm512_set1_epi8(0x43);
  // Bit 7 of each byte moved to bit 6 (0x40 or 0): as a word's high byte, 2.0 or 0.
  const __m512i top = _mm512_and_si512(_mm512_srli_epi16(codes, 1), _mm512_set1_epi8(0x40));
  const __m512bh x0 = (__m512bh)_mm512_loadu_si512(x + 2 * s), x1 = (__m512bh)_mm512_loadu_si512(x + 2 * s + 1);
  __m512 dot = _mm512_dpbf16_ps(_mm512_setzero_ps(), (__m512bh)_mm512_unpacklo_epi8(low, exponent), x0);
  dot = _mm512_dpbf16_ps(dot, (__m512bh)_mm512_unpackhi_epi8(low, exponent), x1);
  __m512 high = _mm512_dpbf16_ps(_mm512_setzero_ps(), (__m512bh)_mm512_unpacklo_epi8(_mm512_setzero_si512(), top), x0);
  high = _mm512_dpbf16_ps(high, (__m512bh)_mm512_unpackhi_epi8(_mm512_setzero_si512(), top), x1);
  return _mm512_fmadd_ps(high, _mm512_set1_ps(64.0f), dot);
}

// 64 codes of another width: as bytes in natural order (int8's ChunkCodes), then each byte paired with
// the exponent byte 0x43 by in-lane unpacks: per 16 codes, 8 to the first vector and 8 to the second.
template <int kBits>
QL_BF16_TARGET inline __m512 StepOther(const uint8_t* row, size_t s, __mmask64 load_mask, const ChunkTables& t,
                                       const __m512i* x) {
  const __m512i codes = int8::ChunkCodes<kBits>(row, s, load_mask, t);
  const __m512i exponent = _mm512_set1_epi8(0x43);
  const __m512i first = _mm512_unpacklo_epi8(codes, exponent), second = _mm512_unpackhi_epi8(codes, exponent);
  const __m512 dot = _mm512_dpbf16_ps(_mm512_setzero_ps(), (__m512bh)first, (__m512bh)_mm512_loadu_si512(x + 2 * s));
  return _mm512_dpbf16_ps(dot, (__m512bh)second, (__m512bh)_mm512_loadu_si512(x + 2 * s + 1));
}

constexpr size_t kPrefetchBytes = 8192;

// One row: per step, the dot product, one FMA with the lanes' group scales; then the bias term.
template <int kBits>
QL_BF16_TARGET __m512 RowKernel(const uint8_t* row, size_t row_bytes, const float* scale, const float* bias,
                                const Activations& a, size_t ahead, int group_shift, const ChunkTables& t) {
  constexpr size_t kCodes = kBits == 4 ? 128 : 64, kStepBytes = kCodes * kBits / 8;
  const size_t steps = (a.cols + kCodes - 1) / kCodes;
  const __mmask64 full = FirstBytes(kStepBytes), last = FirstBytes(row_bytes - (steps - 1) * kStepBytes);
  const std::vector<uint16_t>& order = kBits == 4 ? a.order4 : a.order_other;
  const auto* x = reinterpret_cast<const __m512i*>(order.data());
  __m512 acc = _mm512_setzero_ps();
  for (size_t s = 0; s < steps; ++s) {
    _mm_prefetch(reinterpret_cast<const char*>(row + ahead + s * kStepBytes), _MM_HINT_T0);
    const __mmask64 mask = s + 1 < steps ? full : last;
    __m512 dot;
    if constexpr (kBits == 4) {
      dot = Step4(row, s, mask, x);
    } else if constexpr (kBits == 8) {
      dot = Step8(row, s, mask, x);
    } else {
      dot = StepOther<kBits>(row, s, mask, t, x);
    }
    acc = _mm512_fmadd_ps(dot, int8::StepScale(scale, s, kCodes, group_shift), acc);
  }
  return int8::AddBiasTerm(bias, a.sum.data(), a.groups(), acc);
}

template <int kBits>
QL_BF16_TARGET void RowsOfWidth(const MatrixView& w, size_t first, size_t count, const Activations& a, float* y) {
  static const ChunkTables tables(kBits);
  thread_local RowParams params;
  const size_t groups = w.groups_per_row(), row_bytes = w.packed_words_per_row() * 4;
  // Past the last group: zeros (a half step past it reads one more scale; the bias term reads whole
  // 16-lane vectors against zero sums).
  params.scale.assign(groups + 16, 0.0f);
  params.bias.assign(groups + 16, 0.0f);
  // The same bytes of a row ~8 KiB on are requested ahead of the hardware prefetcher (as int8's kernel).
  const size_t ahead = std::max<size_t>(1, (kPrefetchBytes + row_bytes - 1) / row_bytes) * row_bytes;
  const int group_shift = int8::GroupShift(w);
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (size_t i = 0; i < count; i += 4) {
    const size_t n = std::min<size_t>(4, count - i);
    __m512 acc[4];
#pragma GCC unroll 4
    for (size_t r = 0; r < 4; ++r) {
      if (r >= n) {
        acc[r] = acc[0];
        continue;
      }
      LoadRowParams(w, first + i + r, params);
      acc[r] = RowKernel<kBits>(base + (first + i + r) * row_bytes, row_bytes, params.scale.data(), params.bias.data(),
                                a, ahead, group_shift, tables);
    }
    float out[4];
    int8::ReduceFour(acc[0], acc[1], acc[2], acc[3], out);
    std::copy_n(out, n, y + i);
  }
}

}  // namespace

void rows_bf16(const MatrixView& w, size_t first, size_t count, const Activations& a, float* y) {
  QL_CHECK(kernel_available(), "bf16 kernel called on a CPU without AVX512-BF16");
  int8::WithBits(w.bits, [&](auto bits) { RowsOfWidth<decltype(bits)::value>(w, first, count, a, y); });
}

#else  // no AVX-512 kernels in this build (non-x86 or non-GNU compiler)

bool kernel_available() { return false; }

void rows_bf16(const MatrixView&, size_t, size_t, const Activations&, float*) {
  QL_CHECK(false, "bf16 kernel not built for this architecture");
}

#endif

}  // namespace quantlab::kernels::bf16
