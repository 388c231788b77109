#include "quant/recipe.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cctype>

#include "core/error.h"

namespace quantlab::quant {

namespace {

const std::vector<Recipe>& recipes() {
  static const std::vector<Recipe> all = {
      {"mixed_2_6", 2, 6}, {"mixed_3_4", 3, 4}, {"mixed_3_5", 3, 5}, {"mixed_3_6", 3, 6},
      {"mixed_3_8", 3, 8}, {"mixed_4_6", 4, 6}, {"mixed_4_8", 4, 8},
  };
  return all;
}

// mlx-lm reads the layer index at the position of the first all-digit component of a down_proj path
// ("model.layers.N...": position 2); a path with fewer components (embed_tokens, lm_head) counts as
// layer 0.
int64_t layer_index(const std::string& module) {
  size_t start = 0;
  for (int component = 0; start <= module.size(); ++component) {
    const size_t end = std::min(module.find('.', start), module.size());
    if (component == 2) {
      const std::string part = module.substr(start, end - start);
      if (part.empty() || part.find_first_not_of("0123456789") != std::string::npos) return 0;
      return std::stoll(part);
    }
    start = end + 1;
  }
  return 0;
}

}  // namespace

std::vector<std::string> recipe_names() {
  std::vector<std::string> names;
  for (const auto& r : recipes()) names.push_back(r.name);
  return names;
}

Recipe find_recipe(const std::string& name) {
  for (const auto& r : recipes())
    if (r.name == name) return r;
  fail(ErrorKind::kUsage, "--recipe {}: unknown recipe (known: {})", name, fmt::join(recipe_names(), ", "));
}

bool is_mlx_lm_recipe(const std::string& name) {
  return name == "mixed_2_6" || name == "mixed_3_4" || name == "mixed_3_6" || name == "mixed_4_6";
}

int recipe_bits(const Recipe& recipe, const std::string& module, int64_t num_layers) {
  const int64_t i = layer_index(module), eighth = num_layers / 8;
  const bool more_bits = i < eighth || i >= 7 * num_layers / 8 || (i - eighth) % 3 == 2;
  const bool contains_v = module.find("v_proj") != std::string::npos;
  const bool contains_down = module.find("down_proj") != std::string::npos;
  if ((contains_v || contains_down) && more_bits) return recipe.high_bits;
  if (module.find("lm_head") != std::string::npos) return recipe.high_bits;
  return recipe.low_bits;
}

}  // namespace quantlab::quant
