// Which output tensor gets which treatment when a float checkpoint is quantized, following mlx-lm:
// every Linear / Embedding / SwitchLinear weight (>= 2-D, named *.weight) whose last dimension divides
// by the group size is quantized; norms and 1-D tensors stay float; Qwen3-MoE routers (mlp.gate) use
// 8 bits / group 64; per-expert HF tensors are stacked into switch_mlp.{gate,up,down}_proj [E, out, in];
// a tied lm_head is dropped. The plan needs only names, shapes and dtypes, so it also serves `plan`
// (from config.json alone) and `inspect`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "io/model_config.h"
#include "io/safetensors_writer.h"
#include "quant/rounding_method.h"

namespace quantlab::io {
class ModelWeights;
}

namespace quantlab::quant {

struct SourceTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
};

struct OutputTensor {
  std::string name;                  // "<module>.weight" (or the original name for non-module tensors)
  std::string module;                // module path; empty for tensors that are not module weights
  std::vector<std::string> sources;  // one source, or the experts 0..E-1 stacked in order
  std::vector<int64_t> shape;        // logical float shape; [E, out, in] when stacked
  DType source_dtype = DType::kF32;
  DType float_dtype = DType::kF32;   // dtype of the float output, or of scales/biases when quantized
  std::optional<io::ModuleQuant> quant;
  // How its codes are chosen when the plan says so (a plan file's per-module "method"); nullopt: the
  // quantizer's own method (QuantizeOptions::rounding).
  std::optional<RoundingMethod> method;

  int64_t numel() const;
  int64_t rows() const;  // product of all dims but the last
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  // The safetensors tensors this output becomes: weight (U32) + scales + biases, or one float tensor.
  std::vector<io::TensorSpec> specs() const;
  uint64_t output_bytes() const;
};

// One per-module rule of a quantization policy: modules whose path matches `pattern` (ECMAScript regex,
// searched anywhere in the path) get `quant`, or stay float when it is nullopt.
struct ModuleOverride {
  std::string pattern;
  std::optional<io::ModuleQuant> quant;
  // Where the rule came from, for messages ("plan.json: modules['x']"); empty: the --override flag.
  std::string source;
  std::optional<RoundingMethod> method = std::nullopt;  // a plan file's per-module rounding; nullopt: the quantizer's
};

// A regular expression that matches exactly this module path ("model.layers.0.q_proj" ->
// "^model\\.layers\\.0\\.q_proj$"): how plan files and stored per-module entries become overrides.
std::string exact_module_pattern(const std::string& module);

// Parses "REGEX=BITS[:GROUP]" or "REGEX=float" (the --override flag); GROUP defaults to
// `default_group`. Throws Error(kUsage) naming the text.
ModuleOverride parse_module_override(const std::string& text, int default_group);

// The policy that stamps a setting on every tensor: uniform bits/group, the family's router rule, then
// the overrides in order (the first that matches a module decides; one that matches nothing is an
// error). The plan it produces (QuantPlan::tensors[i].quant) is the one per-module interface the
// quantizer, the size plan, config.json, the binder and `inspect` read.
struct PlanOptions {
  int bits = 4;
  int group_size = 64;
  // Cast float tensors to this dtype first (mlx-lm --dtype); nullopt: the config's dtype, else keep.
  std::optional<DType> dtype;
  // Per-module rules applied after the uniform setting and the family's router rule.
  std::vector<ModuleOverride> overrides;
  // An mlx-lm mixed recipe (quant/recipe.h) instead of the uniform setting and the router rule; the
  // overrides still come after it. `bits` stays the config's global width, as mlx-lm's --q-bits does.
  std::string recipe;
};

struct QuantPlan {
  std::vector<OutputTensor> tensors;      // in module order
  io::QuantizationConfig quantization;    // the config.json block
  std::vector<std::string> dropped;       // source tensors not written (tied lm_head, rotary caches)
  std::optional<DType> output_dtype;      // the dtype written into config.json
  std::vector<std::string> notes;         // things the user should know about the plan (printed by quantize)

  std::vector<io::TensorSpec> output_specs() const;
  uint64_t output_bytes() const;
  // Unpacked parameter count, as mlx-lm's index records it (scales/biases not counted).
  uint64_t total_parameters() const;
};

// Throws Error(kUsage) for unsupported bits/group size, Error(kInvalidInput) for inconsistent experts,
// and Error(kUsage) pointing to `dequantize` when the input is already quantized.
QuantPlan make_quant_plan(const io::ModelConfig& config, const std::vector<SourceTensor>& sources,
                          const PlanOptions& options);

// The tensors of a weights directory, from the safetensors headers only.
std::vector<SourceTensor> source_tensors(const io::ModelWeights& weights);

// "model.layers.10.x" sorts after "model.layers.9.x": numbers compare as numbers.
bool natural_less(const std::string& a, const std::string& b);

}  // namespace quantlab::quant
