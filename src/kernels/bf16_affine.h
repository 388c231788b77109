// The bf16 compute path of affine matrices (Compute::kBf16, docs/compute-paths.md): activations rounded
// to bfloat16, as MLX computes a bf16 model (its quantized kernels read x in the model's dtype and
// accumulate in f32), and dot products of codes and activations with AVX512-BF16.
//
// For a row with codes q, group scales s and biases b, and activations rounded to x̃ = bf16(x):
//     y = Σ_g s_g · Σ_{i∈g} q_i · x̃_i  +  Σ_g b_g · X̃_g,     X̃_g = Σ_{i∈g} x̃_i (f32, in order)
// A code (< 256) and x̃ have 8 significant bits each, so every product q·x̃ is exact in f32: only the
// activation rounding (≤ 2^-8 relative) and f32 summation differ from the exact path.
//
// Kernel: AVX-512 with BF16, VBMI and VNNI (Zen 4, Sapphire Rapids and later), target-attributed
// intrinsics chosen at run time by CPUID (Highway 1.0.3 lowers its bf16 dot product to f32 FMAs).
// Codes below 128 become bfloat16 without a conversion: the bits 0x4300 | q are the value 128 + q, so
// the kernel computes Σ (q + 128)·x̃ with VDPBF16PS and folds −128·s_g·X̃_g into the bias term; 8-bit
// codes are split into their low 7 bits and their top bit. Elsewhere (no AVX512-BF16, Arm, prefill) the path keeps its meaning
// by running the exact kernels on the bf16-rounded activations.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/kernels.h"

namespace quantlab::kernels::bf16 {

// One activation vector rounded to bfloat16.
struct Activations {
  size_t cols = 0;
  size_t group_size = 0;
  std::vector<uint16_t> x;  // bfloat16 bits, zero-padded to a multiple of 128 values plus 64 of slack
  // x in the order the kernel's steps produce codes (bf16_affine.cc, Step*): 4-bit, other widths.
  std::vector<uint16_t> order4, order_other;
  std::vector<float> sum;   // X̃_g per group (f32, summed in order), zero-padded to whole 16-lane vectors plus one

  size_t groups() const { return group_size ? cols / group_size : 0; }
};

// Rounds x[0, cols) to bfloat16 (nearest even; NaN stays NaN) and sums it per group of group_size
// (which divides cols).
void prepare_activations(const float* x, size_t cols, size_t group_size, Activations& out);

// x[0, n) rounded to bfloat16, as floats: the input of the exact kernels where the bf16 kernel does not run.
std::vector<float> rounded_activations(const float* x, size_t n);

// The scalar reference of one row (in double, from the rounded activations and their f32 group sums):
// the value the kernel approximates to f32 rounding.
double reference_row(const MatrixView& w, size_t row, const Activations& a);

// True when this CPU (and this build) runs the AVX512-BF16 kernel.
bool kernel_available();
// Test and benchmark switch: false makes kernel_available() report false (the fallback runs).
void allow_kernel(bool allowed);

// y[i] = row (first + i) · x̃ for i < count (requires kernel_available()). Each row's result depends
// only on its own data, not on first/count.
void rows_bf16(const MatrixView& w, size_t first, size_t count, const Activations& a, float* y);

}  // namespace quantlab::kernels::bf16
