// Fuses a LoRA adapter (PEFT or mlx-lm format) into a base model, float or MLX-quantized:
//   float base:      W' = cast_W(W + scale * B @ A): one rounding, as PEFT merge_and_unload does on a model
//                    loaded in f32 and saved in f16 (mlx-lm rounds the delta first: at most 1 ulp apart)
//   quantized base:  W' = Q(deq(W) + scale * B @ A)           re-quantized with the module's own bits
//                    and group size; the report says how much of the delta survived Q.
// Streams row by row like the quantizer; the output keeps the base's layout and names.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"

namespace quantlab::quant {

struct FuseOptions {
  std::optional<DType> dtype;  // float bases only: cast the output to this dtype
  bool overwrite = false;
  bool show_progress = true;
};

struct FusedModuleReport {
  std::string module;
  double delta_norm = 0;  // ||scale * B A||_F
  // Quantized bases only: <deq(Q(W + D)) - deq(W), D> / ||D||^2, the share of the adapter that survived
  // re-quantization (1 = all of it, 0 = erased).
  std::optional<double> retained;
};

struct FuseReport {
  std::string adapter_format;
  bool quantized_base = false;
  std::vector<FusedModuleReport> modules;
  std::optional<double> retained;  // over all modules, weighted by ||D||^2
  double seconds = 0;
};

FuseReport fuse_adapter(const std::string& base_dir, const std::string& adapter_dir, const std::string& out_dir,
                        const FuseOptions& options, ThreadPool& pool);

}  // namespace quantlab::quant
