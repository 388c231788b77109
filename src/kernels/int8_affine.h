// The int8 compute path of affine matrices (Compute::kInt8, docs/compute-paths.md): activations
// quantized per weight group to int8, integer dot products against the unpacked codes.
//
// For a row with codes q, group scales s and biases b, and activations x quantized per group g as
// x ≈ dx_g · qx (qx in [-127, 127], dx_g = max|x_g| / 127):
//     y = Σ_g s_g · dx_g · Σ_{i∈g} q_i · qx_i  +  Σ_g b_g · X_g,     X_g = dx_g · Σ_{i∈g} qx_i
// that is, the product of the dequantized weights with the rounded activations. The integer sums are
// exact, so only the activation rounding and the f32 combination differ from the exact path. Codes are unsigned (0 .. 2^bits − 1) and activations signed: the shape of x86's VPDPBUSD
// (u8 × s8, four products into each int32 lane).
//
// Kernels: AVX-512 VNNI + VBMI (Ice Lake / Sapphire Rapids / Zen 4 and later) through target-attributed
// intrinsics, chosen at run time by CPUID; Highway 1.0.3 has no integer dot-product op. Elsewhere the
// path keeps its meaning by running the exact kernels on the int8-rounded activations (the same
// numbers up to f32 summation order, at the exact path's speed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/compute_paths.h"
#include "kernels/kernels.h"

namespace quantlab::kernels::int8 {

// Bytes of one 512-bit activation load (zero slack after the padded values).
constexpr size_t kChunk = 64;

// One activation vector quantized per group.
struct Activations {
  size_t cols = 0;
  size_t group_size = 0;
  std::vector<int8_t> q;        // padded with zeros to a multiple of 128 (+ 64 bytes of slack)
  std::vector<int8_t> nibbles;  // q in 4-bit step order: per 128 values, the even ones, then the odd ones
  std::vector<float> scale;   // dx_g per group, zero-padded to whole 16-lane vectors plus one
  std::vector<float> sum;     // X_g = dx_g · Σ qx per group (the rounded values' sum), zero-padded likewise

  size_t groups() const { return group_size ? cols / group_size : 0; }
  // The activation bytes of the kernels' steps at `bits` (int8_x86.h, Step).
  const int8_t* step_bytes(int bits) const { return bits == 4 ? nibbles.data() : q.data(); }
};

// Quantizes x[0, cols) per group of group_size (which divides cols). An all-zero group has dx = 0.
void quantize_activations(const float* x, size_t cols, size_t group_size, Activations& out);

// x'_i = dx_g · qx_i: what the int8 path computes with, as floats (the fallback's input and the
// reference's meaning).
void dequantize_activations(const Activations& a, float* out);

// The n rows of x [n, cols] as the int8 path sees them (each quantized per group, then dequantized):
// the input of the exact kernels where the int8 kernels do not run.
std::vector<float> rounded_activations(const float* x, size_t n, size_t cols, size_t group_size);

// The scalar reference of one row (integer sums in int64, combined in double): the value the kernels
// approximate to f32 rounding.
double reference_row(const MatrixView& w, size_t row, const Activations& a);

// True when this CPU (and this build) runs the VNNI kernel.
bool vnni_available();
// Test and benchmark switch: false makes vnni_available() report false (the fallback runs).
void allow_vnni(bool allowed);

// y[i] = row (first + i) · x for i < count, through the VNNI kernel (requires vnni_available()).
// Each row's result depends only on its own data, not on first/count.
void rows_vnni(const MatrixView& w, size_t first, size_t count, const Activations& a, float* y);

// Y[t * y_stride + first + i] = row (first + i) · x_t for i < count, t < n (prefill), through the VNNI
// kernel (requires vnni_available()); xs holds the n tokens' activations. Every output is computed with
// the operations rows_vnni uses for it, in the same order.
void rows_tokens_vnni(const MatrixView& w, size_t first, size_t count, const Activations* xs, size_t n, float* y,
                      size_t y_stride);

// Every job's product through rows_tokens_vnni (requires vnni_available()): the tokens of each distinct X
// quantized once, then all jobs' row quads as one parallel section.
void matmul_vnni_batch(const MatmulJob* jobs, size_t count, ThreadPool& pool);

}  // namespace quantlab::kernels::int8
