#include "core/dtype.h"

#include "core/error.h"

namespace quantlab {

namespace {
struct DTypeRow {
  DType type;
  std::string_view name;
  size_t size;
};
// Stable names: they are the safetensors spellings and must never change.
constexpr DTypeRow kRows[] = {
    {DType::kF32, "F32", 4}, {DType::kF16, "F16", 2}, {DType::kBF16, "BF16", 2},
    {DType::kU32, "U32", 4}, {DType::kI32, "I32", 4}, {DType::kI64, "I64", 8},
    {DType::kU8, "U8", 1},
};
const DTypeRow& row(DType t) {
  for (const auto& r : kRows) {
    if (r.type == t) return r;
  }
  QL_CHECK(false, "unknown dtype {}", static_cast<int>(t));
}
}  // namespace

size_t dtype_size(DType t) { return row(t).size; }
std::string_view dtype_name(DType t) { return row(t).name; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& r : kRows) {
    if (r.name == name) return r.type;
  }
  return std::nullopt;
}

bool is_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

std::string_view float_dtype_config_name(DType t) {
  switch (t) {
    case DType::kF32: return "float32";
    case DType::kF16: return "float16";
    case DType::kBF16: return "bfloat16";
    default: QL_CHECK(false, "{} is not a float dtype", dtype_name(t));
  }
}

std::optional<DType> parse_float_dtype_config_name(std::string_view name) {
  if (name == "float32") return DType::kF32;
  if (name == "float16") return DType::kF16;
  if (name == "bfloat16") return DType::kBF16;
  return std::nullopt;
}

}  // namespace quantlab
