// Rotary position embedding frequencies (model-spec.md §1.2, §2.4): the inverse frequency of each
// rotated pair, after the config's rope scaling, and the cos/sin of position * frequency.
#pragma once

#include <cstddef>
#include <vector>

#include "io/model_config.h"

namespace quantlab::model {

class RopeFrequencies {
 public:
  // Throws Error(kUnsupported) naming config.json for scaling types other than default, linear and
  // llama3, and Error(kInvalidInput) for an odd head_dim.
  explicit RopeFrequencies(const io::ModelConfig& config);

  size_t pairs() const { return inv_freq_.size(); }
  const std::vector<float>& inv_freq() const { return inv_freq_; }
  // cos/sin[j] of position * inv_freq[j], j < pairs(). Computed as transformers does: the angle is
  // a float32 product, its cosine and sine rounded to float32.
  void at(size_t position, float* cos, float* sin) const;

 private:
  std::vector<float> inv_freq_;
};

}  // namespace quantlab::model
