#include "quant/convert.h"

#include <bit>
#include <cstdint>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "kernels/kernels.h"

namespace quantlab::quant {

void round_to_dtype(float* values, size_t n, DType dtype) {
  if (dtype == DType::kBF16)
    for (size_t i = 0; i < n; ++i) values[i] = round_to_bf16(values[i]);
  else if (dtype == DType::kF16)
    for (size_t i = 0; i < n; ++i) values[i] = round_to_f16(values[i]);
}

void store_as(const float* values, size_t n, DType dtype, uint8_t* out) {
  switch (dtype) {
    case DType::kF32: std::memcpy(out, values, n * 4); return;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_f16(values[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      return;
    case DType::kBF16:
      if (reinterpret_cast<uintptr_t>(out) % alignof(uint16_t) == 0) {
        kernels::convert_f32_to_bf16(values, n, reinterpret_cast<uint16_t*>(out));
        return;
      }
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(values[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      return;
    default: QL_CHECK(false, "cannot store floats as {}", dtype_name(dtype));
  }
}

void load_as_f32_scalar(DType dtype, const uint8_t* data, size_t n, float* out) {
  switch (dtype) {
    case DType::kF32: std::memcpy(out, data, n * 4); return;
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, data + 2 * i, 2);
        out[i] = f16_to_f32(h);
      }
      return;
    case DType::kBF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, data + 2 * i, 2);
        out[i] = bf16_to_f32(h);
      }
      return;
    default: QL_CHECK(false, "cannot load {} as floats", dtype_name(dtype));
  }
}

}  // namespace quantlab::quant
