// Turns the tensors of a model directory into typed views (kernels::MatrixView) that point into the
// memory-mapped files, checking every dtype and shape against what config.json implies. Nothing is
// dequantized here: float weights stay f32/f16/bf16 and MLX-quantized ones stay packed; only small
// vectors (norm weights, additive biases) are converted to f32.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"

namespace quantlab::model {

// y = W x (+ bias). W is [out, in] as stored (float or MLX affine).
struct Linear {
  kernels::MatrixView weight;
  std::vector<float> bias;  // f32 [out]; empty when the layer has no additive bias
};

class WeightBinder {
 public:
  // Both references must outlive the binder (and the views it hands out must not outlive `weights`).
  WeightBinder(const io::ModelWeights& weights, const io::ModelConfig& config);

  // The Linear (or Embedding) at module path P: `P.weight` float [out, in], or, when config.json's
  // quantization rule says P is quantized, `P.weight` U32 [out, in*bits/32] with `P.scales` and
  // `P.biases` [out, in/group_size]. `with_bias` requires `P.bias` [out].
  Linear linear(const std::string& path, int64_t out, int64_t in, bool with_bias);

  // Experts stacked on a leading axis ([E, out, in], mlx-lm's switch_mlp), one view per expert.
  std::vector<kernels::MatrixView> stacked(const std::string& path, int64_t experts, int64_t out,
                                           int64_t in);

  // A float vector of n elements (norm weights, biases), converted to f32.
  std::vector<float> vector_f32(const std::string& name, int64_t n);

  bool has(const std::string& name) const { return weights_.contains(name); }
  // Marks a tensor as deliberately ignored (e.g. lm_head.weight of a tied model).
  void ignore(const std::string& name) { used_.insert(name); }
  // Throws naming the first tensor that no bound module consumed (a config that says fewer layers or
  // experts than the file holds, or an unknown module).
  void check_all_used() const;

  // Bytes of the mapped tensors bound so far (weights read in place).
  uint64_t mapped_bytes() const { return mapped_bytes_; }
  // Bytes of the f32 copies made for small vectors.
  uint64_t copied_bytes() const { return copied_bytes_; }

 private:
  // A view over `P.weight` of shape [lead..., out, in]; rows = prod(lead) * out.
  kernels::MatrixView matrix(const std::string& path, const std::vector<int64_t>& lead, int64_t out,
                             int64_t in);
  kernels::MatrixView float_matrix(const std::string& path, const std::vector<int64_t>& shape);
  kernels::MatrixView quantized_matrix(const std::string& path, const io::ModuleQuant& q,
                                       const std::vector<int64_t>& lead, int64_t out, int64_t in);
  const io::ModelWeights::Entry& tensor(const std::string& name);
  void expect_shape(const io::ModelWeights::Entry& e, const std::vector<int64_t>& shape,
                    const std::string& why) const;
  std::string where(const std::string& name) const;

  const io::ModelWeights& weights_;
  const io::ModelConfig& config_;
  std::set<std::string> used_;
  uint64_t mapped_bytes_ = 0;
  uint64_t copied_bytes_ = 0;
};

}  // namespace quantlab::model
