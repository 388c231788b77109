// How the tensors of an MLX-quantized checkpoint group into modules: P.weight (U32 codes) with
// P.scales and P.biases, bits and group size resolved per module from config.json the way mlx-lm does,
// and every shape cross-checked (packed_cols * 32 / bits == scale_cols * group_size).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "kernels/kernels.h"
#include "io/safetensors.h"

namespace quantlab::quant {

struct QuantizedModule {
  std::string module;                // path without ".weight"
  io::ModuleQuant quant;
  std::vector<int64_t> logical_shape;  // unpacked [.., out, in]
  DType scale_dtype = DType::kF16;
};

struct QuantizedLayout {
  std::vector<QuantizedModule> modules;  // natural order
  std::vector<std::string> float_tensors;  // every other tensor
};

// Checks one quantized module's stored tensors against its settings (mode, bits and group size from the
// format table, U32 codes, scales and biases of one float dtype and shape, packed width consistent with
// the group count) and returns its logical shape. `P.weight` must exist; throws Error naming the module.
// The loader (model::WeightBinder) and every reader of quantized files share this one check.
QuantizedModule check_quantized_module(const io::ModelWeights& weights, const std::string& module,
                                       const io::ModuleQuant& quant);

// The kernel view of a quantized module's stored bytes (all rows; stacked experts are consecutive rows).
kernels::MatrixView quantized_matrix_view(const io::ModelWeights& weights, const QuantizedModule& module);

// Throws Error naming the tensor when shapes, dtypes or the config disagree.
QuantizedLayout describe_quantized(const io::ModelConfig& config, const io::ModelWeights& weights);

}  // namespace quantlab::quant
