// The prefill form of the int8 path (int8_affine.h): rows × tokens through AVX-512 VNNI.
//
// Four rows are unpacked once into their steps' code vectors (int8_x86.h: StepCodes) and kept in L1
// while every token streams past them, four tokens at a time: per step, the rows' code vectors and
// each token's activations feed 16 (row, token) integer dot products, and each sum is converted and
// multiplied by its scale s_rg·dx_tg. That is 4 vector operations per 64 products (VPDPBUSD, conversion,
// the scale's product, FMA), against 4 FMAs of 16 products each plus the decode of the codes in the
// exact tile kernel. Each output gets rows_vnni's operations for it in the
// same order (per step: integer sum, conversion, FMA into its own accumulator; then the bias term folded
// in, and one reduction), so a token's result is the same bit for bit whether it was prefilled or decoded.
#include <algorithm>
#include <vector>

#include "core/error.h"
#include "kernels/int8_affine.h"
#include "kernels/int8_x86.h"

namespace quantlab::kernels::int8 {

#if QL_HAVE_VNNI_KERNEL

namespace {

constexpr size_t kRows = 4, kTokens = 4, kTokenBlock = 64;

// One thread's unpacked rows and their parameters, reused from quad to quad.
struct QuadBuffers {
  size_t stride = 0;            // bytes per unpacked row: its steps' code vectors
  size_t group_stride = 0;      // floats per row (or per row and token) of parameters
  std::vector<uint8_t> codes;   // [kRows][stride]
  std::vector<float> scale;     // [kRows][group_stride]
  std::vector<float> bias;      // [kRows][group_stride]

  // group_stride: the groups in whole 16-lane vectors (zeros past the last), plus one vector of zeros
  // for the steps that read past the last group.
  static size_t GroupStride(size_t groups) { return (groups + 15) / 16 * 16 + 16; }

  void Prepare(size_t row_stride, size_t groups) {
    stride = row_stride;
    group_stride = GroupStride(groups);
    codes.assign(kRows * stride, 0);
    scale.assign(kRows * group_stride, 0.0f);
    bias.assign(kRows * group_stride, 0.0f);
  }
};

// Rows [first, first + rows) (rows <= 4) unpacked into their steps' code vectors; missing rows of a
// partial quad are zero.
template <int kBits>
QL_VNNI_TARGET void UnpackQuad(const MatrixView& w, size_t first, size_t rows, size_t steps, QuadBuffers& b) {
  using S = Step<kBits>;
  static const ChunkTables tables(kBits);
  const size_t row_bytes = w.packed_words_per_row() * 4;
  const __mmask64 full = FirstBytes(S::kBytes), last = FirstBytes(row_bytes - (steps - 1) * S::kBytes);
  for (size_t r = 0; r < kRows; ++r) {
    uint8_t* out = b.codes.data() + r * b.stride;
    float* scale = b.scale.data() + r * b.group_stride;
    float* bias = b.bias.data() + r * b.group_stride;
    if (r >= rows) {
      std::fill(out, out + b.stride, 0);
      std::fill(scale, scale + b.group_stride, 0.0f);
      std::fill(bias, bias + b.group_stride, 0.0f);
      continue;
    }
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + (first + r) * row_bytes;
    for (size_t s = 0; s < steps; ++s) {
      __m512i codes[S::kVectors];
      StepCodes<kBits>(row, s, s + 1 < steps ? full : last, tables, codes);
      for (int p = 0; p < S::kVectors; ++p) _mm512_storeu_si512(out + (s * S::kVectors + p) * 64, codes[p]);
    }
    ConvertRowParams(w, first + r, nullptr, 0.0f, scale, bias);
  }
}

// out[r][t] = row r · token t for the quad in `b` and T tokens: rows_vnni's operations for each output.
template <int kBits, int T>
QL_VNNI_TARGET void QuadTokens(QuadBuffers& b, size_t steps, size_t groups, int group_shift,
                               const Activations* const* xs, float (*out)[kTokens]) {
  using S = Step<kBits>;
  const size_t gs = b.group_stride;
  __m512 acc[kRows][T];
#pragma GCC unroll 4
  for (size_t r = 0; r < kRows; ++r)
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  // Each (row, token) scale is s_rg · dx_tg, multiplied here as rows_vnni's LoadRowParams does (the
  // same f32 product): a table of them, built per four tokens and read back by broadcasts, cost a fifth
  // of the kernel in its stores and address arithmetic.
  for (size_t s = 0; s < steps; ++s) {
    __m512i wv[kRows][S::kVectors];
    __m512 row_scale[kRows];
#pragma GCC unroll 4
    for (size_t r = 0; r < kRows; ++r) {
#pragma GCC unroll 2
      for (int p = 0; p < S::kVectors; ++p)
        wv[r][p] = _mm512_loadu_si512(b.codes.data() + r * b.stride + (s * S::kVectors + p) * 64);
      row_scale[r] = StepScale(b.scale.data() + r * gs, s, S::kCodes, group_shift);
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const int8_t* x = xs[t]->step_bytes(kBits) + s * S::kVectors * 64;
      const __m512 dx = StepScale(xs[t]->scale.data(), s, S::kCodes, group_shift);
#pragma GCC unroll 4
      for (size_t r = 0; r < kRows; ++r) {
        const __m512 scale = _mm512_mul_ps(row_scale[r], dx);
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(StepDot<S::kVectors>(wv[r], x)), scale, acc[r][t]);
      }
    }
  }
  // Every index into acc is a constant once unrolled (here too), so it lives in registers, not memory.
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    __m512 rows[kRows];
#pragma GCC unroll 4
    for (size_t r = 0; r < kRows; ++r) rows[r] = AddBiasTerm(b.bias.data() + r * gs, xs[t]->sum.data(), groups, acc[r][t]);
    float four[kRows];
    ReduceFour(rows[0], rows[1], rows[2], rows[3], four);
#pragma GCC unroll 4
    for (size_t r = 0; r < kRows; ++r) out[r][t] = four[r];
  }
}

template <int kBits>
void RowsTokensOfWidth(const MatrixView& w, size_t first, size_t count, const Activations* xs, size_t n, float* y,
                       size_t y_stride) {
  using S = Step<kBits>;
  thread_local QuadBuffers buffers;
  const size_t steps = (w.cols + S::kCodes - 1) / S::kCodes, groups = w.groups_per_row();
  const size_t stride = steps * S::kVectors * 64;
  if (buffers.stride != stride || buffers.group_stride != QuadBuffers::GroupStride(groups)) buffers.Prepare(stride, groups);
  const int group_shift = GroupShift(w);
  float out[kRows][kTokens];
  // Tokens in blocks that stay in L2 with the rows: 512 tokens' activations (~1.2 MB at 1024 columns)
  // streamed past every quad came from L3. Each quad is unpacked again per block (~2 % of the work).
  for (size_t block = 0; block < n; block += kTokenBlock) {
    const size_t block_end = std::min(n, block + kTokenBlock);
    for (size_t q = 0; q < count; q += kRows) {
      const size_t rows = std::min(kRows, count - q);
      UnpackQuad<kBits>(w, first + q, rows, steps, buffers);
      for (size_t t0 = block; t0 < block_end; t0 += kTokens) {
        const Activations* tokens[kTokens];
        const size_t T = std::min(kTokens, block_end - t0);
        for (size_t t = 0; t < kTokens; ++t) tokens[t] = &xs[t0 + std::min(t, T - 1)];
        switch (T) {
          case 4: QuadTokens<kBits, 4>(buffers, steps, groups, group_shift, tokens, out); break;
          case 3: QuadTokens<kBits, 3>(buffers, steps, groups, group_shift, tokens, out); break;
          case 2: QuadTokens<kBits, 2>(buffers, steps, groups, group_shift, tokens, out); break;
          default: QuadTokens<kBits, 1>(buffers, steps, groups, group_shift, tokens, out); break;
        }
        for (size_t t = 0; t < T; ++t)
          for (size_t r = 0; r < rows; ++r) y[(t0 + t) * y_stride + first + q + r] = out[r][t];
      }
    }
  }
}

}  // namespace

void rows_tokens_vnni(const MatrixView& w, size_t first, size_t count, const Activations* xs, size_t n, float* y,
                      size_t y_stride) {
  QL_CHECK(vnni_available(), "int8 VNNI kernel called on a CPU without it");
  if (count == 0 || n == 0) return;
  WithBits(w.bits, [&](auto bits) { RowsTokensOfWidth<decltype(bits)::value>(w, first, count, xs, n, y, y_stride); });
}

void matmul_vnni_batch(const MatmulJob* jobs, size_t count, ThreadPool& pool) {
  // The tokens of each distinct input, quantized in parallel.
  std::vector<std::vector<Activations>> inputs;
  std::vector<size_t> input_of(count);
  std::vector<MatmulJob> owners;
  for (size_t j = 0; j < count; ++j) {
    const MatmulJob& job = jobs[j];
    input_of[j] = shared_input(owners, job);
    if (input_of[j] < owners.size()) continue;
    owners.push_back(job);
    std::vector<Activations>& tokens = inputs.emplace_back(job.n);
    pool.parallel_for(job.n, 8, [&](size_t begin, size_t end, size_t) {
      for (size_t t = begin; t < end; ++t)
        quantize_activations(job.x + t * job.w.cols, job.w.cols, static_cast<size_t>(job.w.group_size), tokens[t]);
    });
  }
  std::vector<size_t> starts(count + 1, 0);
  for (size_t j = 0; j < count; ++j) starts[j + 1] = starts[j] + (jobs[j].w.rows + kRows - 1) / kRows;
  pool.parallel_for(starts[count], 4, [&](size_t begin, size_t end, size_t) {
    for (size_t j = 0; j < count; ++j) {
      const size_t lo = std::max(begin, starts[j]), hi = std::min(end, starts[j + 1]);
      if (lo >= hi) continue;
      const MatmulJob& job = jobs[j];
      const size_t first = (lo - starts[j]) * kRows, last = std::min(job.w.rows, (hi - starts[j]) * kRows);
      rows_tokens_vnni(job.w, first, last - first, inputs[input_of[j]].data(), job.n, job.y, job.w.rows);
    }
  });
}

#else

void matmul_vnni_batch(const MatmulJob*, size_t, ThreadPool&) {
  QL_CHECK(false, "int8 VNNI kernel not built for this architecture");
}

void rows_tokens_vnni(const MatrixView&, size_t, size_t, const Activations*, size_t, float*, size_t) {
  QL_CHECK(false, "int8 VNNI kernel not built for this architecture");
}

#endif

}  // namespace quantlab::kernels::int8
