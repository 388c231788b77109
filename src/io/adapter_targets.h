// Which modules a LoRA adapter changes, from its adapter_config.json alone (no tensors needed: a plan
// for a 235B model and a synthetic adapter is made from two small JSON files). Both spellings:
//   PEFT:   "target_modules": ["q_proj", ...] (a module matches when its name is the key or ends with
//           ".key") or one regex string (full match), "layers_to_transform": N or [N, ...];
//   mlx-lm: "lora_parameters": {"keys": ["self_attn.q_proj", ...]} (absent: every linear module, as
//           mlx-lm's tuner does), "num_layers": the last N layers (-1 or absent: all).
// Module names are quantlab's plan names (model.layers.L.self_attn.q_proj, stacked experts as
// model.layers.L.mlp.switch_mlp.gate_proj, which also matches the per-expert spelling
// model.layers.L.mlp.experts.E.gate_proj that PEFT sees).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace quantlab::io {

struct AdapterTargets {
  std::string config_path;
  std::vector<std::string> keys;     // name suffixes; empty with !regex: every linear module
  std::optional<std::string> regex;  // PEFT's target_modules as a regex string
  std::vector<int64_t> layers;       // only these layers (empty: no such restriction)
  int64_t last_layers = 0;           // mlx-lm: only the last N layers (0: all)

  // Whether the adapter changes `module` in a model of `num_layers` layers. Modules outside the
  // decoder layers (embedding, lm_head) only when a key names them.
  bool touches(const std::string& module, int64_t num_layers) const;
};

// Throws Error(kInvalidInput) naming DIR/adapter_config.json and the field when it is missing or malformed.
AdapterTargets read_adapter_targets(const std::string& dir);

}  // namespace quantlab::io
