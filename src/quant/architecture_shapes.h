// The Hugging Face source tensors (name, dtype, shape) of a Qwen3, Qwen3-MoE or Llama checkpoint,
// derived from its config.json alone (model-spec.md §2.1) by iterating the architecture registry
// (io/architecture.h). `plan` uses it to size a model that is not on disk, `synth` to know what to
// generate; a test checks it against the fixtures' headers.
#pragma once

#include <optional>
#include <vector>

#include "core/dtype.h"
#include "io/model_config.h"
#include "quant/plan.h"

namespace quantlab::quant {

// Tensors in natural name order. `dtype` defaults to the config's dtype, else bfloat16 (what the
// Qwen3 checkpoints ship). Throws Error(kUnsupported) for architectures other than the three, and
// Error(kInvalidInput) naming the config when a needed size is missing or not positive.
std::vector<SourceTensor> source_tensors_from_config(const io::ModelConfig& config,
                                                     std::optional<DType> dtype = std::nullopt);

// Parameters of those tensors (sum of element counts).
uint64_t count_parameters(const std::vector<SourceTensor>& tensors);

}  // namespace quantlab::quant
