// The int8 path of affine matrices: activation quantization, the scalar reference, and the AVX-512
// VNNI decode kernel (int8_affine.h has the arithmetic, int8_x86.h the steps shared with the prefill
// kernel in int8_matmul.cc). Decode runs one row at a time: per step the row's codes as bytes, one or
// two VPDPBUSD against the int8 activations, one conversion to f32 and one FMA with the lanes' combined
// scales s_g · dx_g; then the bias term and one reduction.
#include "kernels/int8_affine.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "kernels/int8_x86.h"

namespace quantlab::kernels::int8 {

void quantize_activations(const float* x, size_t cols, size_t group_size, Activations& a) {
  QL_CHECK(group_size > 0 && cols % group_size == 0, "int8 activations: {} columns, group size {}", cols, group_size);
  a.cols = cols;
  a.group_size = group_size;
  // Per-group vectors padded with zeros to whole 16-lane vectors and one more, so that the kernels read
  // them without masks (and steps past the last group read zeros).
  const size_t groups = cols / group_size, pad_groups = (groups + 15) / 16 * 16 + 16 - groups;
  const size_t padded = (cols + 127) / 128 * 128;
  a.q.assign(padded + kChunk, 0);
  a.scale.assign(groups + pad_groups, 0.0f);
  a.sum.assign(groups + pad_groups, 0.0f);
  for (size_t g = 0; g < groups; ++g) {
    const float* xg = x + g * group_size;
    float amax = 0.0f;
    for (size_t i = 0; i < group_size; ++i) amax = std::max(amax, std::fabs(xg[i]));
    if (amax == 0.0f) continue;
    if (!std::isfinite(amax)) {  // codes stay 0; the non-finite scale makes the products NaN, as exact ones
      a.scale[g] = a.sum[g] = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    a.scale[g] = amax / 127.0f;
    const float inv = 127.0f / amax;
    int8_t* q = a.q.data() + g * group_size;
    // Round to nearest even by adding and removing 1.5·2^23 (exact for |v| < 2^22; |v| <= 127 here):
    // nearbyint's result without its library call, so the loop vectorizes.
    constexpr float kRound = 12582912.0f;
    int sum = 0;
    for (size_t i = 0; i < group_size; ++i) {
      const float v = std::clamp(xg[i] * inv, -127.0f, 127.0f);
      q[i] = static_cast<int8_t>(static_cast<int>((v + kRound) - kRound));
      sum += q[i];
    }
    // The sum of the rounded values, not of x: the bias term then carries the same rounding as the code
    // term, and y is the exact product of the dequantized weights and the rounded activations, whose error
    // Σ w_i·δx_i is centred with the weights. With Σx exact instead, the error is Σ s·q_i·δx_i with the
    // unsigned codes (~2^(bits-1) on average): KL(exact ‖ int8) 7x higher on the bundled 8-bit model.
    a.sum[g] = a.scale[g] * static_cast<float>(sum);
  }
  a.nibbles.assign(a.q.size(), 0);
  for (size_t i = 0; i < padded; ++i) a.nibbles[i / 128 * 128 + (i % 2) * 64 + (i % 128) / 2] = a.q[i];
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

// One row's group parameters as f32: the combined scales s_g·dx_g and the biases.
struct RowParams {
  std::vector<float> combined;
  std::vector<float> bias;
};

// Converts row r's scales (times dx) and biases; the padding past the last group stays zero.
QL_VNNI_TARGET void LoadRowParams(const MatrixView& w, size_t r, const Activations& a, RowParams& out) {
  const size_t groups = w.groups_per_row();
  ConvertRowParams(w, r, a.scale.data(), 0.0f, out.combined.data(), out.bias.data());
  // Steps past the last group read up to three more (at zero codes); a wider matrix's leftovers there
  // could be inf, and 0 · inf is NaN.
  std::fill(out.combined.begin() + groups, out.combined.begin() + groups + 16, 0.0f);
}

constexpr size_t kPrefetchBytes = 8192;

// One row: per step, the integer dot product, one conversion and one FMA with the lanes' combined
// scales; then the bias term. Rows run one at a time, each one sequential stream: four rows
// interleaved step by step (the exact kernel's layout) pulled 0.6 of the read probe from DRAM on the
// Zen 4 VM, one row 0.9-1.0 at 8 bits (docs/BENCHMARKS.md, "The int8 path").
template <int kBits>
QL_VNNI_TARGET __m512 RowKernel(const uint8_t* row, size_t row_bytes, const RowParams& params, const Activations& a,
                                size_t ahead, int group_shift, const ChunkTables& t) {
  using S = Step<kBits>;
  const size_t steps = (a.cols + S::kCodes - 1) / S::kCodes;
  const __mmask64 full = FirstBytes(S::kBytes), last = FirstBytes(row_bytes - (steps - 1) * S::kBytes);
  const int8_t* x = a.step_bytes(kBits);
  __m512 acc = _mm512_setzero_ps();
  for (size_t s = 0; s < steps; ++s) {
    _mm_prefetch(reinterpret_cast<const char*>(row + ahead + s * S::kBytes), _MM_HINT_T0);
    __m512i codes[S::kVectors];
    StepCodes<kBits>(row, s, s + 1 < steps ? full : last, t, codes);
    const __m512i dot = StepDot<S::kVectors>(codes, x + s * S::kVectors * 64);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), StepScale(params.combined.data(), s, S::kCodes, group_shift), acc);
  }
  return AddBiasTerm(params.bias.data(), a.sum.data(), a.groups(), acc);
}

template <int kBits>
QL_VNNI_TARGET void RowsOfWidth(const MatrixView& w, size_t first, size_t count, const Activations& a, float* y) {
  static const ChunkTables tables(kBits);
  thread_local RowParams params;
  const size_t groups = w.groups_per_row(), row_bytes = w.packed_words_per_row() * 4;
  if (params.combined.size() < groups + 16) {
    params.combined.assign(groups + 16, 0.0f);
    params.bias.assign(groups + 16, 0.0f);
  }
  const int group_shift = GroupShift(w);
  // The same bytes of a row ~8 KiB on are requested ahead of the hardware prefetcher (measured on the
  // 28-layer stack: 0.77-0.93 of the probe against 0.55-0.88 without; 2 KiB in between).
  const size_t ahead = std::max<size_t>(1, (kPrefetchBytes + row_bytes - 1) / row_bytes) * row_bytes;
  const auto* base = static_cast<const uint8_t*>(w.data);
  // Rows run one after the other (one stream), four accumulators reduced together.
  for (size_t i = 0; i < count; i += 4) {
    const size_t n = std::min<size_t>(4, count - i);
    __m512 acc[4];
#pragma GCC unroll 4
    for (size_t r = 0; r < 4; ++r) {
      if (r >= n) {
        acc[r] = acc[0];
        continue;
      }
      LoadRowParams(w, first + i + r, a, params);
      acc[r] = RowKernel<kBits>(base + (first + i + r) * row_bytes, row_bytes, params, a, ahead, group_shift, tables);
    }
    float out[4];
    ReduceFour(acc[0], acc[1], acc[2], acc[3], out);
    std::copy_n(out, n, y + i);
  }
}

}  // namespace

void rows_vnni(const MatrixView& w, size_t first, size_t count, const Activations& a, float* y) {
  QL_CHECK(vnni_available(), "int8 VNNI kernel called on a CPU without it");
  WithBits(w.bits, [&](auto bits) { RowsOfWidth<decltype(bits)::value>(w, first, count, a, y); });
}

#else  // no VNNI kernel in this build (non-x86 or non-GNU compiler)

bool vnni_available() { return false; }

void rows_vnni(const MatrixView&, size_t, size_t, const Activations&, float*) {
  QL_CHECK(false, "int8 VNNI kernel not built for this architecture");
}

#endif

}  // namespace quantlab::kernels::int8
