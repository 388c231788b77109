// Normal deviates for synthetic weights (`quantlab synth`), as a pure function of a 64-bit counter,
// at vector speed (issue 18: a full-size Qwen3-30B-A3B checkpoint must be practical to prepare).
//
// The definition (the scalar reference below; the vector kernel must give the same bits on every
// target): for element i of a run, bits = mix64(base + (i + 1)·γ) (splitmix64: γ = 0x9e3779b97f4a7c15,
// mix64 its output function); bucket b = the top 12 bits, u = the next 20 bits;
//   deviate = float(double(value[b]) + (u · 2⁻²⁰) · double(delta[b]))
// where value/delta are float tables (an inverse-CDF table and its differences). The product of
// a 20-bit and a 24-bit significand is exact in double, so a fused multiply-add and a multiply then add
// give the same double: the result does not depend on whether a target (or the compiler) fuses.
//   out = float(scale · deviate)   (one float rounding, computed exactly in double then rounded)
// and an outlier when the low 32 bits are below `outlier_threshold`: out = copysign(outlier_magnitude,
// out).
#pragma once

#include <cstddef>
#include <cstdint>

namespace quantlab::kernels {

inline constexpr uint64_t kSplitMixGamma = 0x9e3779b97f4a7c15ull;
inline constexpr int kSynthBucketBits = 12;

// splitmix64's output function (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
inline uint64_t mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The inverse-CDF table, 2^12 buckets: value[b], and delta[b] = value[b+1] − value[b], float values
// stored as double (what the vector gathers read).
struct SynthNormalTable {
  const double* value = nullptr;
  const double* delta = nullptr;
};

struct SynthNormalRun {
  uint64_t base = 0;               // element i uses counter base + (i + 1)·γ
  float scale = 1;
  uint32_t outlier_threshold = 0;  // 0: no outliers
  float outlier_magnitude = 0;
};

// The deviate of one 64-bit word (the definition above, before scaling).
float synth_normal_deviate(uint64_t bits, const SynthNormalTable& table);

// out[0, n): the definition, one element at a time.
void synth_normal_fill_reference(const SynthNormalRun& run, const SynthNormalTable& table, size_t n, float* out);
// The same values, vectorised (Highway, runtime dispatch).
void synth_normal_fill(const SynthNormalRun& run, const SynthNormalTable& table, size_t n, float* out);

}  // namespace quantlab::kernels
