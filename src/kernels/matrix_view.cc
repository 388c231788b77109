// Target-independent parts of the kernel API: view slicing, argument checks and single-row
// dequantization of affine weights (a scalar decode in natural order, one group at a time).
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "kernels/kernels.h"
#include "kernels/matrix_checks.h"

namespace quantlab::kernels {
namespace {

// Bytes per stored element of a float format (the format table's width).
size_t element_size(WeightType t) { return static_cast<size_t>(format_of(t, 0).bits / 8); }

float load_scalar(DType type, const uint8_t* p) {
  uint16_t h;
  switch (type) {
    case DType::kF16:
      std::memcpy(&h, p, 2);
      return f16_to_f32(h);
    case DType::kBF16:
      std::memcpy(&h, p, 2);
      return bf16_to_f32(h);
    default: {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
  }
}

uint32_t load_word(const uint8_t* p) {
  uint32_t w;
  std::memcpy(&w, p, 4);
  return w;
}

// Decodes one group (whole words, docs/mlx-format.md §2) as fma(q, scale, bias).
void dequantize_group(const uint8_t* words, int bits, size_t count, float scale, float bias,
                      float* out) {
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  uint64_t window = 0;
  int available = 0;
  for (size_t i = 0; i < count; ++i) {
    if (available < bits) {
      window |= static_cast<uint64_t>(load_word(words)) << available;
      words += 4;
      available += 32;
    }
    out[i] = std::fma(static_cast<float>(window & mask), scale, bias);
    window >>= bits;
    available -= bits;
  }
}

}  // namespace

const char* compute_name(Compute c) {
  switch (c) {
    case Compute::kInt8: return "int8";
    case Compute::kBf16: return "bf16";
    case Compute::kExact: break;
  }
  return "exact";
}

Compute parse_compute(const std::string& name) {
  if (name == "exact") return Compute::kExact;
  if (name == "int8") return Compute::kInt8;
  if (name == "bf16") return Compute::kBf16;
  fail(ErrorKind::kUsage, "--compute: '{}' is not a compute path (exact, int8 or bf16)", name);
}

MatrixView affine_f32_view(size_t rows, size_t cols, int bits, int group_size, const uint32_t* packed,
                           const float* scales, const float* biases) {
  MatrixView v;
  v.type = WeightType::kAffine;
  v.rows = rows;
  v.cols = cols;
  v.data = packed;
  v.bits = bits;
  v.group_size = group_size;
  v.scale_type = DType::kF32;
  v.scales = scales;
  v.biases = biases;
  return v;
}

MatrixView MatrixView::row_slice(size_t first, size_t count) const {
  QL_CHECK(first + count <= rows, "row_slice [{}, {}) outside {} rows", first, first + count, rows);
  MatrixView view = *this;
  view.rows = count;
  if (type != WeightType::kAffine) {
    view.data = static_cast<const uint8_t*>(data) + first * cols * element_size(type);
    return view;
  }
  view.data = static_cast<const uint8_t*>(data) + first * packed_words_per_row() * 4;
  const size_t scale_stride = groups_per_row() * dtype_size(scale_type);
  view.scales = static_cast<const uint8_t*>(scales) + first * scale_stride;
  view.biases = static_cast<const uint8_t*>(biases) + first * scale_stride;
  return view;
}

uint64_t stored_bytes(const MatrixView& w) {
  return format_of(w.type, w.bits).stored_bytes(w.rows, w.cols, w.group_size, w.scale_type);
}

void check_matrix_view(const MatrixView& w, const char* op) {
  QL_CHECK(w.rows == 0 || w.cols == 0 || w.data != nullptr, "{}: null weight data", op);
  if (w.type != WeightType::kAffine) return;
  QL_CHECK(is_supported_bits(w.bits), "{}: affine bits {} not in the format table ({})", op, w.bits,
           supported_bits_text());
  QL_CHECK(is_supported_group_size(w.group_size), "{}: affine group size {} is not {}", op, w.group_size,
           supported_group_sizes_text());
  QL_CHECK(w.cols % static_cast<size_t>(w.group_size) == 0,
           "{}: {} columns are not a multiple of the group size {}", op, w.cols, w.group_size);
  QL_CHECK(w.scale_type == DType::kF32 || w.scale_type == DType::kF16 || w.scale_type == DType::kBF16,
           "{}: scales must be F32, F16 or BF16", op);
  QL_CHECK(w.rows == 0 || (w.scales != nullptr && w.biases != nullptr), "{}: null scales/biases", op);
}

void dequantize_row(const MatrixView& w, size_t row, float* out) {
  check_matrix_view(w, "dequantize_row");
  QL_CHECK(row < w.rows, "dequantize_row: row {} outside {} rows", row, w.rows);
  if (w.type != WeightType::kAffine) {
    const DType dtype = format_of(w.type, 0).element_dtype;
    const auto* src = static_cast<const uint8_t*>(w.data) + row * w.cols * element_size(w.type);
    convert_to_f32(dtype, src, w.cols, out);
    return;
  }
  const size_t group = static_cast<size_t>(w.group_size);
  const size_t groups = w.groups_per_row();
  const size_t scale_size = dtype_size(w.scale_type);
  const auto* words = static_cast<const uint8_t*>(w.data) + row * w.packed_words_per_row() * 4;
  const auto* scales = static_cast<const uint8_t*>(w.scales) + row * groups * scale_size;
  const auto* biases = static_cast<const uint8_t*>(w.biases) + row * groups * scale_size;
  const size_t group_bytes = group * static_cast<size_t>(w.bits) / 8;
  for (size_t g = 0; g < groups; ++g) {
    dequantize_group(words + g * group_bytes, w.bits, group, load_scalar(w.scale_type, scales + g * scale_size),
                     load_scalar(w.scale_type, biases + g * scale_size), out + g * group);
  }
}

}  // namespace quantlab::kernels
