#include "kernels/format.h"

#include <array>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "kernels/affine_reference.h"

namespace quantlab::kernels {

namespace {

constexpr std::string_view kFloatKernel = "float elements (matvec RunFloatQuads, matmul FloatTile)";
constexpr std::string_view kAffineKernel = "affine codes (affine_unpack-inl.h, panel_kernel-inl.h)";

constexpr FormatTraits float_row(std::string_view name, WeightType type, DType dtype, int bits) {
  FormatTraits t;
  t.name = name;
  t.type = type;
  t.element_dtype = dtype;
  t.bits = bits;
  t.kernel = kFloatKernel;
  return t;
}

FormatTraits affine_row(std::string_view name, int bits) {
  FormatTraits t;
  t.name = name;
  t.type = WeightType::kAffine;
  t.element_dtype = DType::kU32;
  t.bits = bits;
  t.quantized = true;
  t.mlx_loads = bits != 7;  // MLX's kernels have no 7-bit path; quantlab writes it in the same layout
  t.encode_row_reference = quantize_row_reference;
  t.decode_row_reference = dequantize_row_reference;
  t.kernel = kAffineKernel;
  return t;
}

const std::array<FormatTraits, 10>& table() {
  static const std::array<FormatTraits, 10> rows = {
      float_row("float32", WeightType::kF32, DType::kF32, 32),
      float_row("float16", WeightType::kF16, DType::kF16, 16),
      float_row("bfloat16", WeightType::kBF16, DType::kBF16, 16),
      affine_row("affine2", 2), affine_row("affine3", 3), affine_row("affine4", 4), affine_row("affine5", 5),
      affine_row("affine6", 6), affine_row("affine7", 7), affine_row("affine8", 8),
  };
  return rows;
}

// MLX's kernels are instantiated for these group sizes only.
constexpr std::array<int, 3> kGroupSizes = {32, 64, 128};

std::string or_list(const std::vector<int>& values) {
  if (values.size() < 2) return fmt::format("{}", fmt::join(values, ""));
  const std::vector<int> head(values.begin(), values.end() - 1);
  return fmt::format("{} or {}", fmt::join(head, ", "), values.back());
}

}  // namespace

uint64_t FormatTraits::stored_bytes(uint64_t rows, uint64_t cols, int group_size, DType scale_dtype) const {
  if (!quantized) return rows * cols * static_cast<uint64_t>(bits / 8);
  const uint64_t words = cols * static_cast<uint64_t>(bits) / 32;
  const uint64_t groups = group_size > 0 ? cols / static_cast<uint64_t>(group_size) : 0;
  return rows * (words * 4 + 2 * groups * dtype_size(scale_dtype));
}

std::vector<StoredTensor> FormatTraits::stored_tensors(const std::vector<int64_t>& shape, int group_size,
                                                       DType float_dtype) const {
  if (!quantized) return {{"weight", float_dtype, shape}};
  std::vector<int64_t> packed = shape, groups = shape;
  packed.back() = shape.back() * bits / 32;
  groups.back() = shape.back() / group_size;
  return {{"weight", DType::kU32, packed}, {"scales", float_dtype, groups}, {"biases", float_dtype, groups}};
}

std::span<const FormatTraits> all_formats() { return table(); }

const FormatTraits* float_format(DType dtype) {
  for (const auto& row : table())
    if (!row.quantized && row.element_dtype == dtype) return &row;
  return nullptr;
}

const FormatTraits* affine_format(int bits) {
  for (const auto& row : table())
    if (row.quantized && row.bits == bits) return &row;
  return nullptr;
}

const FormatTraits& format_of(WeightType type, int bits) {
  for (const auto& row : table())
    if (row.type == type && (type != WeightType::kAffine || row.bits == bits)) return row;
  fail(ErrorKind::kInternal, "no weight format for type {} at {} bits", static_cast<int>(type), bits);
}

std::vector<int> supported_bits() {
  std::vector<int> out;
  for (const auto& row : table())
    if (row.quantized) out.push_back(row.bits);
  return out;
}

std::vector<int> mlx_bits() {
  std::vector<int> out;
  for (const auto& row : table())
    if (row.quantized && row.mlx_loads) out.push_back(row.bits);
  return out;
}

std::span<const int> supported_group_sizes() { return kGroupSizes; }

bool is_supported_bits(int bits) { return affine_format(bits) != nullptr; }
bool is_mlx_bits(int bits) {
  const FormatTraits* row = affine_format(bits);
  return row && row->mlx_loads;
}
bool is_supported_group_size(int group_size) {
  for (int g : kGroupSizes)
    if (g == group_size) return true;
  return false;
}

std::string supported_bits_text() { return or_list(supported_bits()); }
std::string supported_group_sizes_text() {
  return or_list(std::vector<int>(kGroupSizes.begin(), kGroupSizes.end()));
}

void check_affine_settings(int bits, int group_size, const std::string& where) {
  if (!is_supported_bits(bits) || !is_supported_group_size(group_size))
    fail(ErrorKind::kUnsupported, "{}: bits {} / group size {} not supported (bits {}; group size {})", where, bits,
         group_size, supported_bits_text(), supported_group_sizes_text());
}

}  // namespace quantlab::kernels
