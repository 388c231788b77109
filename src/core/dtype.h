// Element types of stored tensors, with the safetensors spelling of each.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace quantlab {

enum class DType : uint8_t { kF32, kF16, kBF16, kU32, kI32, kI64, kU8 };

// Bytes per element.
size_t dtype_size(DType t);
// "F32", "F16", "BF16", "U32", "I32", "I64", "U8" (safetensors names).
std::string_view dtype_name(DType t);
// Parses a safetensors dtype name; nullopt for names quantlab does not read (e.g. "F64", "F8_E4M3").
std::optional<DType> parse_dtype(std::string_view name);
bool is_float(DType t);
// The user-facing names of the float dtypes, as in --dtype and config.json: float32/float16/bfloat16.
std::string_view float_dtype_config_name(DType t);
std::optional<DType> parse_float_dtype_config_name(std::string_view name);

}  // namespace quantlab
