// Deterministic random weights with the statistics of trained LLM checkpoints, for `synth` models.
// Every value is a pure function of (seed, tensor name, element index): a counter-based generator
// (splitmix64 of the counter) instead of a sequential stream, so any chunking and any thread count
// produce the same bytes, and any slice can be generated without generating what precedes it.
//
// Statistics (per tensor kind):
//   matrices  value = s_r * (0.02 * z), z ~ N(0, 1), row scale s_r = exp(0.3 * z_r) (log-normal: rows of
//             trained projections differ in magnitude, which is what group-wise quantization feels);
//             1 value in 10^4 is an outlier of +-20 * 0.02 * s_r (the rare large weights that set a
//             group's range).
//   norms     1 + U(-0.1, 0.1) (1-D "*norm.weight" tensors).
//   biases    0.02 * z, no outliers.
// The normal deviate comes from a 4096-bucket inverse-CDF table with linear interpolation inside
// each bucket (tails truncated near +-3.7 sigma; the outliers supply the heavy tail), which costs a
// table lookup instead of a logarithm and keeps generation faster than the disk.
#pragma once

#include <cstdint>
#include <string>

namespace quantlab::quant {

enum class SynthKind { kMatrix, kNorm, kBias };

// The kind a tensor name and rank imply.
SynthKind synth_kind_of(const std::string& name, size_t rank);

struct SynthStatistics {
  static constexpr float kStd = 0.02f;            // base standard deviation of matrix entries
  static constexpr float kRowScaleSigma = 0.3f;   // sigma of log(row scale)
  static constexpr double kOutlierRate = 1e-4;    // fraction of matrix entries that are outliers
  static constexpr float kOutlierSigmas = 20.0f;  // outlier magnitude in units of the row's std
  static constexpr float kNormSpread = 0.1f;      // norm weights lie in 1 +- this
};

class SynthTensorGenerator {
 public:
  SynthTensorGenerator(uint64_t seed, const std::string& tensor_name, SynthKind kind);

  // Writes the values of rows [first_row, first_row + rows) of a tensor with `cols` columns (a 1-D
  // tensor is one row) into out[rows * cols].
  void fill_rows(int64_t first_row, int64_t rows, int64_t cols, float* out) const;

  // One standard normal deviate as a pure function of a 64-bit random word (exposed for tests).
  static float normal_from_bits(uint64_t bits);

 private:
  float row_scale(int64_t row) const;
  uint64_t key_;
  SynthKind kind_;
};

// splitmix64's output function (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
uint64_t mix64(uint64_t x);

}  // namespace quantlab::quant
