// The narrow, type-erased interface between model code and the SIMD kernels (Highway, runtime
// dispatch). Model code names operations and passes MatrixViews; it never sees an ISA or a packed
// byte. Every kernel here has a scalar reference it is tested against on every compiled target.
//
// Conventions: activations are f32; weights are read in their stored format (f32/f16/bf16 elements or
// MLX affine packed codes) and decoded inside the kernel; accumulation is f32. Pointers into mmapped
// safetensors need not be aligned. Results never depend on the thread count (work is split by output
// rows; each row's sum is computed the same way whatever thread runs it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/format.h"

namespace quantlab::kernels {

// How a matrix's products are computed (docs/compute-paths.md). kExact: f32 activations and f32
// arithmetic on the decoded weights, the reference of every correctness test. kInt8: activations
// rounded per weight group to int8 (scale = max|x|/127) and integer dot products against the unpacked
// codes (AVX-512 VNNI where the CPU has it), the bias term applied once per group from the exact f32
// group sums: w·x = Σ_g s_g·dx_g·Σ q·qx + b_g·Σ x. kBf16: activations rounded to bfloat16 (what MLX
// computes with for a bf16 model), products of codes and activations exact in f32 (AVX512-BF16 dot
// products where the CPU has them), w·x = Σ_g s_g·Σ q·x̃ + b_g·Σ x̃. Float matrices ignore it (always
// exact).
enum class Compute : uint8_t { kExact, kInt8, kBf16 };

// "exact" / "int8" / "bf16"; parse_compute throws Error(kUsage) naming the accepted values.
const char* compute_name(Compute c);
Compute parse_compute(const std::string& name);
// What runs a path's decode on this CPU: the Highway target for exact, "AVX512_VNNI" for int8 and
// "AVX512_BF16" for bf16 with their kernels, "exact kernels on int8-rounded activations" (or
// bf16-rounded) where the path's kernel cannot run.
const char* compute_kernel(Compute c);

// A row-major weight matrix [rows (out features), cols (in features)], as stored.
struct MatrixView {
  WeightType type = WeightType::kF32;
  size_t rows = 0;
  size_t cols = 0;
  // kF32/kF16/kBF16: rows*cols elements. kAffine: rows * (cols*bits/32) uint32 words; row r's codes are
  // an LSB-first bit stream (docs: mlx-format.md §2).
  const void* data = nullptr;
  // kAffine only: per-group scale and bias, [rows, cols/group_size], of type scale_type (F32/F16/BF16);
  // w = scale*q + bias.
  int bits = 0;
  int group_size = 0;
  DType scale_type = DType::kF16;
  const void* scales = nullptr;
  const void* biases = nullptr;
  // kAffine only: the arithmetic of its products (float views are always exact).
  Compute compute = Compute::kExact;

  size_t packed_words_per_row() const { return cols * static_cast<size_t>(bits) / 32; }
  size_t groups_per_row() const { return group_size ? cols / static_cast<size_t>(group_size) : 0; }
  // The view of rows [first, first+count) (used for stacked MoE experts and tiling).
  MatrixView row_slice(size_t first, size_t count) const;
};

// The view of rows × cols affine codes chosen in memory (a module probe, a sensitivity candidate), with
// float32 scales and biases: packed [rows, cols·bits/32], scales and biases [rows, cols/group_size].
MatrixView affine_f32_view(size_t rows, size_t cols, int bits, int group_size, const uint32_t* packed,
                           const float* scales, const float* biases);

// Bytes the view's matrix occupies as stored (its format's row in kernels/format.h).
uint64_t stored_bytes(const MatrixView& w);

// Name of the Highway target chosen at run time (e.g. "AVX3", "AVX2", "NEON", "EMU128").
const char* active_target();

// y[r] = sum_c W[r,c] x[c], r in [0, w.rows). Decode path.
void matvec(const MatrixView& w, const float* x, float* y, ThreadPool& pool);

// One matrix-vector product of a batch.
struct MatvecJob {
  MatrixView w;
  const float* x = nullptr;
  float* y = nullptr;
};

// y = W x for every job, in one parallel section: decode issues a few hundred small products per
// token, so q/k/v, gate/up and the active experts run as one batch each. Affine jobs that read the
// same x with the same layout share its preparation. Results are bit-identical to one matvec per job.
void matvec_batch(const MatvecJob* jobs, size_t count, ThreadPool& pool);

// Y[i, r] = sum_c W[r,c] X[i,c] for i < n; X is [n, w.cols], Y is [n, w.rows], both row-major.
// Prefill path: weights are decoded once per tile and reused across the n activations (with a few
// tokens, at most 3/4 of the vector lanes: one matvec per token instead).
void matmul(const MatrixView& w, const float* x, size_t n, float* y, ThreadPool& pool);

// One matrix-matrix product of a batch: Y [n, w.rows] = X [n, w.cols] W^T.
struct MatmulJob {
  MatrixView w;
  const float* x = nullptr;
  size_t n = 0;
  float* y = nullptr;
};

// Every job's product in two parallel sections (activation layout, then all jobs' weight tiles as one
// pool of work): prefill's q/k/v and gate/up, and a MoE layer's experts, each with the tokens routed
// to it. Jobs that read the same X the same way share its preparation. Results are bit-identical to
// one matmul per job.
void matmul_batch(const MatmulJob* jobs, size_t count, ThreadPool& pool);

// Bytes the matmul kernels hold between calls, over all threads: each worker's decoded tile (half its
// L2) and panel staging, and each calling thread's activation panels (the largest batch's tokens x K
// floats: a 512-token MoE prefill's experts, 4096 rows x 2048, hold 32 MiB). Reused, never shrunk;
// reported beside the model's scratch, which does not include them.
size_t matmul_workspace_bytes();

// out[c] = W[row, c] as f32 (embedding lookup, dequantization, analysis).
void dequantize_row(const MatrixView& w, size_t row, float* out);

// Converts n stored elements of type src (F32, F16 or BF16) to f32.
void convert_to_f32(DType src, const void* data, size_t n, float* out);

// Index of the first NaN or infinity in values[0, n), or n.
size_t first_non_finite(const float* values, size_t n);
// convert_to_f32 and first_non_finite together, chunk by chunk while each chunk is in L1 (a second
// pass over the whole output cost the quantizer 5-7 % of its cycles): the index of the first NaN or
// infinity among the converted values, or n. The values are converted up to that chunk's end.
size_t convert_to_f32_checked(DType src, const void* data, size_t n, float* out);

// out[i] = bfloat16 bits of in[i], rounded to nearest even (NaNs quieted): core/half.h's f32_to_bf16.
void convert_f32_to_bf16(const float* in, size_t n, uint16_t* out);

// out = weight * x / sqrt(mean(x^2) + eps), all f32. out may alias x.
void rms_norm(const float* x, const float* weight, size_t n, float eps, float* out);

// Rotate-half (NeoX) RoPE on one head of head_dim values, in place: pairs (j, j + head_dim/2),
// with cos/sin tables of head_dim/2 entries for this position.
void rope_neox(float* head, size_t head_dim, const float* cos, const float* sin);

// In-place numerically stable softmax over n values (subtracts the max; f32).
void softmax(float* x, size_t n);

// out[i] = silu(gate[i]) * up[i]; silu(g) = g / (1 + exp(-g)). out may alias gate or up.
void silu_mul(const float* gate, const float* up, size_t n, float* out);

float dot(const float* a, const float* b, size_t n);
// y += a * x
void axpy(float a, const float* x, float* y, size_t n);

// One query head against a KV cache: out[d] = sum_t softmax_t(scale * q.k_t) v_t for t < n_ctx.
// k and v rows are head_dim floats, stride `kv_stride` floats apart. scratch holds n_ctx floats.
void attend_head(const float* q, const float* k, const float* v, size_t n_ctx, size_t head_dim,
                 size_t kv_stride, float scale, float* scratch, float* out);

// Causal attention of `count` (1..4) consecutive queries of one head: query i (q + i * q_stride) sees
// cache positions [0, n_ctx + i); out + i * out_stride receives its head_dim outputs. Each query's result
// is bit-identical to attend_head's for it alone (prefill and decode agree). scratch holds
// count * (n_ctx + count) floats.
void attend_queries(const float* q, size_t q_stride, size_t count, const float* k, const float* v, size_t n_ctx,
                    size_t head_dim, size_t kv_stride, float scale, float* scratch, float* out, size_t out_stride);

// Up to four query heads that share one KV head (grouped-query attention), all seeing cache positions
// [0, n_ctx): one decode step. Each K and V row is loaded once for all of them, and each head's result
// is bit-identical to attend_head's for it alone. q, out, scratch as in attend_queries; scratch holds
// count * n_ctx floats.
void attend_heads(const float* q, size_t q_stride, size_t count, const float* k, const float* v, size_t n_ctx,
                  size_t head_dim, size_t kv_stride, float scale, float* scratch, float* out, size_t out_stride);

// MLX affine quantization of rows (the CPU kernel's rule, bit-exact with quant/affine_reference.h):
// w is [rows, cols] f32, cols % group_size == 0. Writes packed codes [rows, cols*bits/32] and the f32
// (unrounded) scales/biases [rows, cols/group_size]; the caller rounds them to the storage dtype.
void affine_quantize(const float* w, size_t rows, size_t cols, int bits, int group_size,
                     uint32_t* packed, float* scales, float* biases);

// Packs n codes (one per byte, each < 2^bits; n a multiple of 32) into the format's LSB-first
// stream of n·bits/32 words: affine_quantize's packing, for codes chosen elsewhere (GPTQ).
void pack_codes(const uint8_t* codes, size_t n, int bits, uint32_t* words);

// The weighted rounding error of one row of `cols` values at one setting (analysis/sensitivity.h),
// without writing codes: each group quantized by affine_quantize's rule, its scale and bias rounded
// to `param_dtype` as written, dequantized, e = w − deq; *err = Σ m_j e_j², *along = Σ m_j e_j d_j
// (0 when d is null). Sums in f32 lanes per group, added in double.
void affine_rounding_error(const float* w, const float* m, const float* d, size_t cols, int bits, int group_size,
                           DType param_dtype, double* err, double* along);

}  // namespace quantlab::kernels
