// mlx-lm's mixed recipes, module for module, on the published Qwen3-0.6B, Qwen3-8B and Qwen3-30B-A3B
// shapes. The expected tables are derived by hand from mlx-lm's rule (mlx_lm/convert.py,
// mixed_quant_predicate_builder): with L layers, layer i uses more bits when i < L//8, i >= 7L//8 or
// (i - L//8) % 3 == 2; v_proj and down_proj of those layers and lm_head get the high width, every other
// quantized module (routers included) the low width, group size 64, and every module an entry in the
// config's quantization block.
#include "quant/recipe.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "core/error.h"
#include "io/model_config.h"
#include "quant/architecture_shapes.h"
#include "quant/plan.h"
#include "quant/synth.h"

namespace quantlab::quant {
namespace {

QuantPlan recipe_plan(const std::string& like, const std::string& recipe) {
  const io::ModelConfig c = io::parse_model_config(synth_config(like, std::nullopt, DType::kBF16), like);
  PlanOptions o;
  o.recipe = recipe;
  return make_quant_plan(c, source_tensors_from_config(c), o);
}

// Layers that "use more bits", written out from the rule above for each depth.
const std::set<int> kMoreBits28 = {0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27};
const std::set<int> kMoreBits36 = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 31, 32, 33, 34, 35};
const std::set<int> kMoreBits48 = {0, 1, 2, 3, 4, 5, 8, 11, 14, 17, 20, 23, 26, 29, 32, 35, 38, 41,
                                   42, 43, 44, 45, 46, 47};

int layer_of(const std::string& module) {
  const std::string prefix = "model.layers.";
  if (module.rfind(prefix, 0) != 0) return -1;
  return std::stoi(module.substr(prefix.size()));
}

void check_assignment(const QuantPlan& plan, const std::set<int>& more, int low, int high, size_t* quantized) {
  for (const auto& t : plan.tensors) {
    if (!t.quant) continue;
    ++*quantized;
    const int layer = layer_of(t.module);
    const bool sensitive = t.module.ends_with("v_proj") || t.module.ends_with("down_proj");
    int want = low;
    if (t.module == "lm_head" || (sensitive && more.count(layer))) want = high;
    EXPECT_EQ(t.quant->bits, want) << t.module;
    EXPECT_EQ(t.quant->group_size, 64) << t.module;
    // mlx-lm records the recipe's answer for every module it quantizes.
    ASSERT_TRUE(plan.quantization.per_module.count(t.module)) << t.module;
    EXPECT_EQ(plan.quantization.per_module.at(t.module), t.quant) << t.module;
  }
}

TEST(Recipe, Qwen3_0_6B_Mixed36) {
  const QuantPlan plan = recipe_plan("qwen3-0.6b", "mixed_3_6");
  size_t quantized = 0;
  check_assignment(plan, kMoreBits28, 3, 6, &quantized);
  EXPECT_EQ(quantized, 28u * 7 + 1);  // 7 projections per layer + the (tied) embedding
  EXPECT_EQ(plan.quantization.global.bits, 4);  // the global entry is --bits, as mlx-lm's --q-bits
  EXPECT_TRUE(plan.notes.empty());
}

TEST(Recipe, Qwen3_8B_Mixed26AndLmHead) {
  const QuantPlan plan = recipe_plan("qwen3-8b", "mixed_2_6");
  size_t quantized = 0;
  check_assignment(plan, kMoreBits36, 2, 6, &quantized);
  EXPECT_EQ(quantized, 36u * 7 + 2);  // + embedding and the untied lm_head (high width)
  bool head = false;
  for (const auto& t : plan.tensors) head |= t.module == "lm_head" && t.quant && t.quant->bits == 6;
  EXPECT_TRUE(head);
}

TEST(Recipe, Qwen3_30B_A3B_Mixed46RoutersAtTheLowWidth) {
  const QuantPlan plan = recipe_plan("qwen3-30b-a3b", "mixed_4_6");
  size_t quantized = 0;
  check_assignment(plan, kMoreBits48, 4, 6, &quantized);
  EXPECT_EQ(quantized, 48u * 8 + 2);  // q k v o, router, 3 stacked switch_mlp projections; embedding, lm_head
  std::map<std::string, int> bits;
  for (const auto& t : plan.tensors)
    if (t.quant) bits[t.module] = t.quant->bits;
  EXPECT_EQ(bits.at("model.layers.8.mlp.switch_mlp.down_proj"), 6);
  EXPECT_EQ(bits.at("model.layers.9.mlp.switch_mlp.down_proj"), 4);
  EXPECT_EQ(bits.at("model.layers.0.mlp.gate"), 4);  // not 8: mlx-lm's recipe replaces the router rule
  ASSERT_EQ(plan.notes.size(), 1u);
  EXPECT_NE(plan.notes[0].find("--override 'mlp\\.gate$=8:64'"), std::string::npos) << plan.notes[0];
}

TEST(Recipe, OverridesComeAfterTheRecipe) {
  const io::ModelConfig c = io::parse_model_config(synth_config("qwen3-30b-a3b", 2, DType::kBF16), "two layers");
  PlanOptions o;
  o.recipe = "mixed_3_6";
  o.overrides = {parse_module_override(R"(mlp\.gate$=8:64)", 64)};
  const QuantPlan plan = make_quant_plan(c, source_tensors_from_config(c), o);
  size_t routers = 0;
  for (const auto& t : plan.tensors) {
    if (!t.module.ends_with("mlp.gate")) continue;
    ++routers;
    EXPECT_EQ(t.quant, (io::ModuleQuant{8, 64, "affine"})) << t.module;
  }
  EXPECT_EQ(routers, 2u);
  EXPECT_TRUE(plan.notes.empty());
}

TEST(Recipe, UnknownRecipeIsAUsageError) {
  try {
    find_recipe("mixed_5_9");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find("mixed_3_6"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(is_mlx_lm_recipe("mixed_4_6"));
  EXPECT_FALSE(is_mlx_lm_recipe("mixed_4_8"));
}

}  // namespace
}  // namespace quantlab::quant
