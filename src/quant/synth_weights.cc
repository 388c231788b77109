#include "quant/synth_weights.h"

#include <array>
#include <cmath>

namespace quantlab::quant {

namespace {

constexpr uint64_t kGamma = 0x9e3779b97f4a7c15ull;  // splitmix64's counter increment
constexpr int kBucketBits = 12;
constexpr int kBuckets = 1 << kBucketBits;

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
const std::array<float, kBuckets + 1>& quantile_table() {
  static const std::array<float, kBuckets + 1> table = [] {
    std::array<float, kBuckets + 1> t{};
    for (int i = 0; i <= kBuckets; ++i) {
      double p = static_cast<double>(i) / kBuckets;
      if (i == 0) p = 0.25 / kBuckets;
      if (i == kBuckets) p = 1 - 0.25 / kBuckets;
      t[i] = static_cast<float>(inverse_normal_cdf(p));
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

uint64_t mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

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
  const auto& t = quantile_table();
  const uint32_t bucket = static_cast<uint32_t>(bits >> (64 - kBucketBits));
  const float frac = static_cast<float>((bits >> (64 - kBucketBits - 20)) & 0xfffff) * (1.0f / (1 << 20));
  return t[bucket] + frac * (t[bucket + 1] - t[bucket]);
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
    const float scale = SynthStatistics::kStd * (matrix ? row_scale(row) : 1.0f);
    for (int64_t c = 0; c < cols; ++c) {
      const uint64_t bits = mix64(base + static_cast<uint64_t>(c + 1) * kGamma);
      float v = scale * normal_from_bits(bits);
      if (matrix && static_cast<uint32_t>(bits) < kOutlierThreshold)
        v = std::copysign(SynthStatistics::kOutlierSigmas * scale, v);
      dst[c] = v;
    }
  }
}

}  // namespace quantlab::quant
