// mlx-lm's mixed-precision recipes (`mlx_lm.convert --quant-predicate mixed_X_Y`), module for module,
// so that `quantlab quantize --recipe mixed_3_6` writes the files mlx-lm would. The rule (mlx-lm
// convert.py, mixed_quant_predicate_builder, after llama.cpp's Q4_K_M): with L layers, layer i "uses
// more bits" when i < L/8, i >= 7L/8, or (i - L/8) % 3 == 2 (integer division); v_proj and down_proj
// of such layers, and lm_head, get the high width; every other quantizable module the low width; group
// size 64 unless --group-size says otherwise. mlx-lm passes the recipe instead of the model's own
// predicate, so Qwen3-MoE routers get the low width too (quantize prints a notice; --override pins them).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "io/model_config.h"

namespace quantlab::quant {

struct Recipe {
  std::string name;  // "mixed_3_6"
  int low_bits = 0;
  int high_bits = 0;
};

// The recipes quantlab knows: mlx-lm's mixed_2_6, mixed_3_4, mixed_3_6, mixed_4_6, plus mixed_3_5,
// mixed_3_8 and mixed_4_8 (the same rule at other widths; mlx-lm has no such recipe, so their files
// are quantlab's own choice in mlx-lm's format).
std::vector<std::string> recipe_names();
// Throws Error(kUsage) naming the recipe and listing the known ones.
Recipe find_recipe(const std::string& name);
// True for the recipes mlx-lm itself ships (file parity holds for these).
bool is_mlx_lm_recipe(const std::string& name);

// The recipe's width for a module path (a module the plan quantizes), for a model of `num_layers`.
int recipe_bits(const Recipe& recipe, const std::string& module, int64_t num_layers);

}  // namespace quantlab::quant
