// The int8 path of affine matrices: activation quantization, the scalar reference, and the AVX-512
// VNNI kernel (int8_affine.h has the arithmetic).
//
// The VNNI kernel handles 64 codes of a row per step, whatever the width: the 8·bits bytes holding
// them are loaded (masked, so nothing past the row is read), VPERMB gives every 64-bit lane the
// `bits` bytes of its 8 codes, VPMULTISHIFTQB moves code k of the lane to byte k (8 bits starting at
// bit k·bits) and an AND keeps the code. The bytes are then in natural order, the same order as the
// int8 activations, and one VPDPBUSD gives 16 int32 sums of four products. At 8 bits the bytes are
// already the codes. Four rows share each activation load; each row's sum is converted to f32 once per
// chunk and multiplied by its lanes' combined scale s_g · dx_g.
#include "kernels/int8_affine.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "core/error.h"

#if defined(__x86_64__) && defined(__GNUC__)
// GCC 12 reports its own _mm512_undefined_* pass-through operands (the unmasked forms of VCVTPH2PS,
// VPERMB, VPMULTISHIFTQB, ...) as maybe-uninitialized once inlined (GCC bug 105593); they are not.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#define QL_HAVE_VNNI_KERNEL 1
#define QL_VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vbmi")))
#else
#define QL_HAVE_VNNI_KERNEL 0
#endif

namespace quantlab::kernels {

const char* compute_kernel(Compute c) {
  if (c == Compute::kExact) return active_target();
  return int8::vnni_available() ? "AVX512_VNNI" : "exact kernels on int8-rounded activations";
}

}  // namespace quantlab::kernels

namespace quantlab::kernels::int8 {

void quantize_activations(const float* x, size_t cols, size_t group_size, Activations& a) {
  QL_CHECK(group_size > 0 && cols % group_size == 0, "int8 activations: {} columns, group size {}", cols, group_size);
  a.cols = cols;
  a.group_size = group_size;
  const size_t groups = cols / group_size, pad_groups = kChunk / std::min<size_t>(group_size, kChunk) + 1;
  a.q.assign(a.chunks() * kChunk + kChunk, 0);
  a.scale.assign(groups + pad_groups, 0.0f);
  a.sum.assign(groups + pad_groups, 0.0f);
  for (size_t g = 0; g < groups; ++g) {
    const float* xg = x + g * group_size;
    float amax = 0.0f, sum = 0.0f;
    for (size_t i = 0; i < group_size; ++i) {
      amax = std::max(amax, std::fabs(xg[i]));
      sum += xg[i];
    }
    a.sum[g] = sum;
    if (amax == 0.0f) continue;
    a.scale[g] = amax / 127.0f;
    const float inv = 127.0f / amax;
    int8_t* q = a.q.data() + g * group_size;
    for (size_t i = 0; i < group_size; ++i)
      q[i] = static_cast<int8_t>(std::clamp(std::nearbyint(xg[i] * inv), -127.0f, 127.0f));
  }
}

void dequantize_activations(const Activations& a, float* out) {
  for (size_t i = 0; i < a.cols; ++i) out[i] = a.scale[i / a.group_size] * static_cast<float>(a.q[i]);
}

std::vector<float> rounded_activations(const float* x, size_t n, size_t cols, size_t group_size) {
  std::vector<float> out(n * cols);
  Activations a;
  for (size_t i = 0; i < n; ++i) {
    quantize_activations(x + i * cols, cols, group_size, a);
    dequantize_activations(a, out.data() + i * cols);
  }
  return out;
}

namespace {

// Code i of a row (LSB-first bit stream, docs/mlx-format.md §2).
uint32_t code_at(const uint8_t* row, size_t row_bytes, size_t i, int bits) {
  const size_t bit = i * static_cast<size_t>(bits);
  uint32_t window = row[bit / 8];
  if (bit / 8 + 1 < row_bytes) window |= static_cast<uint32_t>(row[bit / 8 + 1]) << 8;
  return (window >> (bit % 8)) & ((1u << bits) - 1u);
}

float param_at(const MatrixView& w, const void* base, size_t index) {
  float value;
  convert_to_f32(w.scale_type, static_cast<const uint8_t*>(base) + index * dtype_size(w.scale_type), 1, &value);
  return value;
}

}  // namespace

double reference_row(const MatrixView& w, size_t row, const Activations& a) {
  QL_CHECK(w.type == WeightType::kAffine && a.cols == w.cols && a.group_size == static_cast<size_t>(w.group_size),
           "int8 reference: activations do not match the matrix");
  const size_t row_bytes = w.packed_words_per_row() * 4, groups = w.groups_per_row();
  const uint8_t* codes = static_cast<const uint8_t*>(w.data) + row * row_bytes;
  double y = 0.0;
  for (size_t g = 0; g < groups; ++g) {
    int64_t dot = 0;
    for (size_t i = g * a.group_size; i < (g + 1) * a.group_size; ++i)
      dot += static_cast<int64_t>(code_at(codes, row_bytes, i, w.bits)) * a.q[i];
    const double s = param_at(w, w.scales, row * groups + g), b = param_at(w, w.biases, row * groups + g);
    y += s * a.scale[g] * static_cast<double>(dot) + b * a.sum[g];
  }
  return y;
}

namespace {
std::atomic<bool> vnni_allowed{true};
}

void allow_vnni(bool allowed) { vnni_allowed = allowed; }

#if QL_HAVE_VNNI_KERNEL

bool vnni_available() {
  static const bool supported = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                                __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vbmi");
  return supported && vnni_allowed;
}

namespace {

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

// One row's group parameters as f32: the combined scales s_g·dx_g and the biases.
struct RowParams {
  std::vector<float> combined;
  std::vector<float> bias;
};

QL_VNNI_TARGET __m512 LoadParams16(DType type, const uint8_t* p, __mmask16 m) {
  if (type == DType::kF32) return _mm512_maskz_loadu_ps(m, p);
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  if (type == DType::kF16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// Converts row r's scales (times dx) and biases; the padding past the last group stays zero.
QL_VNNI_TARGET void LoadRowParams(const MatrixView& w, size_t r, const Activations& a, RowParams& out) {
  const size_t groups = w.groups_per_row(), size = dtype_size(w.scale_type);
  const auto* scales = static_cast<const uint8_t*>(w.scales) + r * groups * size;
  const auto* biases = static_cast<const uint8_t*>(w.biases) + r * groups * size;
  for (size_t g = 0; g < groups; g += 16) {
    const __mmask16 m = groups - g >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (groups - g)) - 1u);
    const __m512 s = LoadParams16(w.scale_type, scales + g * size, m);
    _mm512_mask_storeu_ps(out.combined.data() + g, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, a.scale.data() + g)));
    _mm512_mask_storeu_ps(out.bias.data() + g, m, LoadParams16(w.scale_type, biases + g * size, m));
  }
}

// Σ_g b_g·X_g of one row.
QL_VNNI_TARGET float BiasTerm(const float* bias, const float* sums, size_t groups) {
  __m512 acc = _mm512_setzero_ps();
  for (size_t g = 0; g < groups; g += 16) {
    const __mmask16 m = groups - g >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (groups - g)) - 1u);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, bias + g), _mm512_maskz_loadu_ps(m, sums + g), acc);
  }
  return _mm512_reduce_add_ps(acc);
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

// Every lane's combined scale for chunk v: lane i holds codes 4i..4i+3, i.e. group (64v + 4i) / G.
QL_VNNI_TARGET inline __m512 ChunkScale(const float* combined, size_t v, int group_shift) {
  if (group_shift >= 6) return _mm512_set1_ps(combined[(v * kChunk) >> group_shift]);
  const __m512i halves = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_permutexvar_ps(halves, _mm512_maskz_loadu_ps(0x3, combined + 2 * v));
}

constexpr size_t kPrefetchBytes = 8192;

// R consecutive rows (R <= 4) starting at `codes[0]`.
template <int kBits, int R>
QL_VNNI_TARGET void RowsKernel(const uint8_t* const* codes, const RowParams* params, const Activations& a,
                               size_t row_bytes, size_t ahead, int group_shift, const ChunkTables& t, float* out) {
  const size_t chunks = a.chunks(), chunk_bytes = 8 * kBits;
  const size_t last_bytes = row_bytes - (chunks - 1) * chunk_bytes;
  const __mmask64 full = chunk_bytes == 64 ? ~__mmask64(0) : (__mmask64(1) << chunk_bytes) - 1;
  const __mmask64 last = last_bytes == 64 ? ~__mmask64(0) : (__mmask64(1) << last_bytes) - 1;
  __m512 acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (size_t v = 0; v < chunks; ++v) {
    const __m512i x = _mm512_loadu_si512(a.q.data() + v * kChunk);
    const __mmask64 load_mask = v + 1 < chunks ? full : last;
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(codes[r] + ahead + v * chunk_bytes), _MM_HINT_T0);
      const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ChunkCodes<kBits>(codes[r], v, load_mask, t), x);
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), ChunkScale(params[r].combined.data(), v, group_shift), acc[r]);
    }
  }
  const size_t groups = a.groups();
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(acc[r]) + BiasTerm(params[r].bias.data(), a.sum.data(), groups);
}

template <int kBits>
QL_VNNI_TARGET void RowsOfWidth(const MatrixView& w, size_t first, size_t count, const Activations& a, float* y) {
  static const ChunkTables tables(kBits);
  thread_local RowParams params[4];
  const size_t groups = w.groups_per_row(), row_bytes = w.packed_words_per_row() * 4;
  for (RowParams& p : params) {
    if (p.combined.size() < groups + 16) {
      p.combined.assign(groups + 16, 0.0f);
      p.bias.assign(groups + 16, 0.0f);
    }
  }
  int group_shift = 0;
  while ((size_t{1} << group_shift) < static_cast<size_t>(w.group_size)) ++group_shift;
  // Four interleaved row streams defeat the hardware prefetchers; each prefetches the same bytes of a
  // row ~8 KiB on (the exact matvec's measured distance).
  const size_t ahead = std::max<size_t>(4, (kPrefetchBytes + row_bytes - 1) / row_bytes) * row_bytes;
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (size_t i = 0; i < count; i += 4) {
    const size_t n = std::min<size_t>(4, count - i);
    const uint8_t* codes[4];
    for (size_t r = 0; r < n; ++r) {
      codes[r] = base + (first + i + r) * row_bytes;
      LoadRowParams(w, first + i + r, a, params[r]);
    }
    switch (n) {
      case 4: RowsKernel<kBits, 4>(codes, params, a, row_bytes, ahead, group_shift, tables, y + i); break;
      case 3: RowsKernel<kBits, 3>(codes, params, a, row_bytes, ahead, group_shift, tables, y + i); break;
      case 2: RowsKernel<kBits, 2>(codes, params, a, row_bytes, ahead, group_shift, tables, y + i); break;
      default: RowsKernel<kBits, 1>(codes, params, a, row_bytes, ahead, group_shift, tables, y + i); break;
    }
  }
}

}  // namespace

void rows_vnni(const MatrixView& w, size_t first, size_t count, const Activations& a, float* y) {
  QL_CHECK(vnni_available(), "int8 VNNI kernel called on a CPU without it");
  switch (w.bits) {
    case 2: return RowsOfWidth<2>(w, first, count, a, y);
    case 3: return RowsOfWidth<3>(w, first, count, a, y);
    case 4: return RowsOfWidth<4>(w, first, count, a, y);
    case 5: return RowsOfWidth<5>(w, first, count, a, y);
    case 6: return RowsOfWidth<6>(w, first, count, a, y);
    case 7: return RowsOfWidth<7>(w, first, count, a, y);
    default: return RowsOfWidth<8>(w, first, count, a, y);
  }
}

#else  // no VNNI kernel in this build (non-x86 or non-GNU compiler)

bool vnni_available() { return false; }

void rows_vnni(const MatrixView&, size_t, size_t, const Activations&, float*) {
  QL_CHECK(false, "int8 VNNI kernel not built for this architecture");
}

#endif

}  // namespace quantlab::kernels::int8
