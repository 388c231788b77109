#include "quant/synth_weights.h"

#include <array>
#include <cmath>

namespace quantlab::quant {

namespace {

constexpr uint64_t kGamma = kernels::kSplitMixGamma;  // splitmix64's counter increment
constexpr int kBuckets = 1 << kernels::kSynthBucketBits;

// Inverse of the standard normal CDF by bisection on erfc: only used to build the table once.
double inverse_normal_cdf(double p) {
  double lo = -10, hi = 10;
  for (int i = 0; i < 100; ++i) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// Quantiles at i / kBuckets; the two infinite ends are replaced by the quantiles a quarter bucket in.
// As the vector kernel reads them: value[b] = the float quantile, delta[b] = value[b+1] − value[b]
// rounded to float, both stored as double.
struct QuantileTable {
  std::array<double, kBuckets> value{}, delta{};
  kernels::SynthNormalTable view() const { return {value.data(), delta.data()}; }
};

const QuantileTable& quantile_table() {
  static const QuantileTable table = [] {
    std::array<float, kBuckets + 1> q{};
    for (int i = 0; i <= kBuckets; ++i) {
      double p = static_cast<double>(i) / kBuckets;
      if (i == 0) p = 0.25 / kBuckets;
      if (i == kBuckets) p = 1 - 0.25 / kBuckets;
      q[i] = static_cast<float>(inverse_normal_cdf(p));
    }
    QuantileTable t;
    for (int i = 0; i < kBuckets; ++i) {
      t.value[i] = q[i];
      t.delta[i] = q[i + 1] - q[i];  // a float subtraction, stored exactly
    }
    return t;
  }();
  return table;
}

uint64_t hash_name(const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

SynthKind synth_kind_of(const std::string& name, size_t rank) {
  if (ends_with(name, ".bias")) return SynthKind::kBias;
  if (rank <= 1) return SynthKind::kNorm;  // every 1-D weight of these families is a norm scale
  return SynthKind::kMatrix;
}

SynthTensorGenerator::SynthTensorGenerator(uint64_t seed, const std::string& tensor_name, SynthKind kind)
    : key_(mix64(seed ^ mix64(hash_name(tensor_name)))), kind_(kind) {
  quantile_table();  // built once, thread-safely, before the hot loop
}

float SynthTensorGenerator::normal_from_bits(uint64_t bits) {
  return kernels::synth_normal_deviate(bits, quantile_table().view());
}

float SynthTensorGenerator::row_scale(int64_t row) const {
  // A second stream (the key's complement) so row scales are independent of the entries.
  const uint64_t bits = mix64(~key_ + static_cast<uint64_t>(row + 1) * kGamma);
  return std::exp(SynthStatistics::kRowScaleSigma * normal_from_bits(bits));
}

void SynthTensorGenerator::fill_rows(int64_t first_row, int64_t rows, int64_t cols, float* out) const {
  // Low 32 bits decide outliers; the high bits (bucket + fraction) give the deviate.
  constexpr uint32_t kOutlierThreshold = static_cast<uint32_t>(SynthStatistics::kOutlierRate * 4294967296.0);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t row = first_row + r;
    const uint64_t base = key_ + static_cast<uint64_t>(row * cols) * kGamma;
    float* dst = out + r * cols;
    if (kind_ == SynthKind::kNorm) {
      for (int64_t c = 0; c < cols; ++c) {
        const uint64_t bits = mix64(base + static_cast<uint64_t>(c + 1) * kGamma);
        const float u = static_cast<float>(bits >> 40) * (1.0f / (1 << 24));  // [0, 1)
        dst[c] = 1.0f + SynthStatistics::kNormSpread * (2 * u - 1);
      }
      continue;
    }
    const bool matrix = kind_ == SynthKind::kMatrix;
    kernels::SynthNormalRun run;
    run.base = base;
    run.scale = SynthStatistics::kStd * (matrix ? row_scale(row) : 1.0f);
    run.outlier_threshold = matrix ? kOutlierThreshold : 0;
    run.outlier_magnitude = SynthStatistics::kOutlierSigmas * run.scale;
    kernels::synth_normal_fill(run, quantile_table().view(), static_cast<size_t>(cols), dst);
  }
}

}  // namespace quantlab::quant
