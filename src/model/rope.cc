#include "model/rope.h"

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace quantlab::model {

namespace {

// Llama 3.1's rule: long wavelengths are slowed down by `factor`, short ones kept, and the band in
// between interpolated smoothly.
double llama3_scaled(double inv, const io::RopeScaling& s) {
  const double orig = static_cast<double>(s.original_max_position_embeddings);
  const double low_wavelen = orig / s.low_freq_factor;
  const double high_wavelen = orig / s.high_freq_factor;
  const double wavelen = 2.0 * std::numbers::pi / inv;
  if (wavelen < high_wavelen) return inv;
  if (wavelen > low_wavelen) return inv / s.factor;
  const double smooth = (orig / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  return (1.0 - smooth) * inv / s.factor + smooth * inv;
}

}  // namespace

RopeFrequencies::RopeFrequencies(const io::ModelConfig& config) {
  const int64_t d = config.head_dim;
  if (d <= 0 || d % 2 != 0) fail_input("{}: head_dim {} must be positive and even for RoPE", config.path, d);
  const auto& scaling = config.rope_scaling;
  if (scaling && scaling->type != "linear" && scaling->type != "llama3")
    fail(ErrorKind::kUnsupported, "{}: rope scaling type '{}' is not supported (default, linear, llama3 are)",
         config.path, scaling->type);
  if (scaling && scaling->factor <= 0)
    fail_input("{}: rope scaling factor must be positive, got {}", config.path, scaling->factor);
  if (scaling && scaling->type == "llama3" && scaling->high_freq_factor <= scaling->low_freq_factor)
    fail_input("{}: llama3 rope scaling needs high_freq_factor > low_freq_factor", config.path);
  inv_freq_.resize(static_cast<size_t>(d / 2));
  for (int64_t j = 0; j < d / 2; ++j) {
    // transformers computes the base frequencies in float32.
    const float base = static_cast<float>(
        1.0 / std::pow(config.rope_theta, static_cast<double>(static_cast<float>(2 * j) / static_cast<float>(d))));
    double inv = base;
    if (scaling && scaling->type == "linear") inv /= scaling->factor;
    if (scaling && scaling->type == "llama3") inv = llama3_scaled(inv, *scaling);
    inv_freq_[static_cast<size_t>(j)] = static_cast<float>(inv);
  }
}

void RopeFrequencies::at(size_t position, float* cos, float* sin) const {
  const float p = static_cast<float>(position);
  for (size_t j = 0; j < inv_freq_.size(); ++j) {
    const float angle = p * inv_freq_[j];
    cos[j] = static_cast<float>(std::cos(static_cast<double>(angle)));
    sin[j] = static_cast<float>(std::sin(static_cast<double>(angle)));
  }
}

}  // namespace quantlab::model
