// The weight-format table: one row per format a weight matrix can be stored in (float32, float16,
// bfloat16, and MLX affine at each width 2..8), the way ggml keeps one traits row per type and
// gemma.cpp keeps Type/kTypeBits. Everything that needs to know a format's facts reads this row:
// stored sizes (model::stored_bytes, the size plan), the tensors a quantized module is written as
// (the quantization plan, the binder's checks), the supported widths and group sizes (every CLI list),
// the scalar reference codec the SIMD kernels are tested against, and the matvec/matmul path.
//
// Adding a format is one row here, its reference codec, and its decode in the kernel families named
// by `kernel` (docs/ARCHITECTURE.md, "How to add a weight format").
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace quantlab::kernels {

// How the matvec/matmul kernels decode a matrix (the dispatch key of matvec.cc / matmul.cc).
enum class WeightType : uint8_t { kF32, kF16, kBF16, kAffine };

// One stored tensor of a module: `module` + "." + suffix, with its dtype and shape.
struct StoredTensor {
  std::string suffix;  // "weight", "scales", "biases"
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
};

struct FormatTraits {
  std::string_view name;  // "float32", "float16", "bfloat16", "affine2" .. "affine8"
  WeightType type = WeightType::kF32;
  DType element_dtype = DType::kF32;  // the dtype of `.weight`: F32/F16/BF16, or U32 packed codes
  int bits = 0;                       // bits per weight element (float) or per code (affine)
  bool quantized = false;
  bool mlx_loads = true;              // false: 7-bit affine, a quantlab extension mlx_lm.load refuses
  // Reference codec, one row of `cols` values. Float formats store values (convert_to_f32 decodes);
  // affine rows: packed codes + f32 scales/biases per group (kernels/affine_reference.h).
  void (*encode_row_reference)(const float* w, size_t cols, int bits, int group_size, uint32_t* packed,
                               float* scales, float* biases) = nullptr;
  void (*decode_row_reference)(const uint32_t* packed, const float* scales, const float* biases, size_t cols,
                               int bits, int group_size, float* out) = nullptr;
  // The kernels' entry points: matvec/matmul/dequantize_row (kernels.h) take a MatrixView whose `type`
  // is this row's; the kernel family that decodes it is named here for the reader.
  std::string_view kernel;

  // Bytes of a [rows, cols] matrix in this format (scales and biases of scale_dtype for affine).
  uint64_t stored_bytes(uint64_t rows, uint64_t cols, int group_size, DType scale_dtype) const;
  // The tensors a module of logical shape [..., out, in] is stored as: `weight` alone, or the packed
  // `weight` [..., out, in*bits/32] with `scales` and `biases` [..., out, in/group_size].
  std::vector<StoredTensor> stored_tensors(const std::vector<int64_t>& shape, int group_size,
                                           DType float_dtype) const;
};

// Every row, floats first, then affine by width.
std::span<const FormatTraits> all_formats();
// The float row for F32/F16/BF16; nullptr for other dtypes.
const FormatTraits* float_format(DType dtype);
// The affine row for `bits`; nullptr when the width is not supported.
const FormatTraits* affine_format(int bits);
// The row that decodes a view of this type (affine: at `bits`).
const FormatTraits& format_of(WeightType type, int bits);

// Widths and group sizes, read from the table (for messages and CLI checks).
std::vector<int> supported_bits();              // 2..8
std::vector<int> mlx_bits();                    // the widths mlx_lm.load accepts: 2,3,4,5,6,8
std::span<const int> supported_group_sizes();   // 32, 64, 128
bool is_supported_bits(int bits);
bool is_mlx_bits(int bits);
bool is_supported_group_size(int group_size);
// "2, 3, 4, 5, 6, 7 or 8" / "32, 64 or 128": the lists as messages name them.
std::string supported_bits_text();
std::string supported_group_sizes_text();

// Throws Error(kUnsupported) naming `where` when bits/group size are outside the table.
void check_affine_settings(int bits, int group_size, const std::string& where);

}  // namespace quantlab::kernels
