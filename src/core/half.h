// Scalar float16 / bfloat16 <-> float32 conversions (round to nearest even, as IEEE and torch do).
// Bulk conversions inside hot loops live in kernels/; these are the reference and the slow path.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

namespace quantlab {

inline float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

inline uint16_t f32_to_bf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<uint16_t>(u >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Round-trips f through the storage dtype's precision (what storing then loading gives).
inline float round_to_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }
inline float round_to_f16(float f) { return f16_to_f32(f32_to_f16(f)); }

}  // namespace quantlab
