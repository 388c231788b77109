#include "io/model_config.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "test_support.h"

namespace quantlab::io {
namespace {

using nlohmann::ordered_json;
using testing::data_path;

TEST(ModelConfig, V5SpellingsOfTheFixtures) {
  const auto moe = load_model_config(data_path("reference-models/qwen3moe-tiny"));
  EXPECT_EQ(moe.arch, Architecture::kQwen3Moe);
  EXPECT_GT(moe.num_experts, 0);  // from num_local_experts
  EXPECT_TRUE(moe.norm_topk_prob);
  EXPECT_FALSE(moe.is_moe_layer(1));  // mlp_only_layers [1]
  EXPECT_TRUE(moe.is_moe_layer(0));
  EXPECT_EQ(moe.dtype, DType::kF16);
  const auto dense = load_model_config(data_path("tool-calling/dense-base-f16"));
  EXPECT_EQ(dense.rope_theta, 1000000.0);  // from rope_parameters
  EXPECT_EQ(dense.head_dim, 32);
  EXPECT_TRUE(dense.tie_word_embeddings);
}

TEST(ModelConfig, V4SpellingsAndLlama3RopeScaling) {
  const ordered_json j = ordered_json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
    "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
    "num_key_value_heads": 8, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "torch_dtype": "bfloat16",
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "tie_word_embeddings": true, "eos_token_id": [128001, 128008, 128009]})");
  const auto c = parse_model_config(j, "config.json");
  EXPECT_EQ(c.arch, Architecture::kLlama);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.rope_theta, 500000.0);
  ASSERT_TRUE(c.rope_scaling.has_value());
  EXPECT_EQ(c.rope_scaling->type, "llama3");
  EXPECT_EQ(c.rope_scaling->factor, 32.0);
  EXPECT_EQ(c.dtype, DType::kBF16);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
}

TEST(ModelConfig, QuantizationBlockFollowsMlxLmRules) {
  const ordered_json j = ordered_json::parse(R"({"model_type": "unknown_arch",
    "quantization": {"group_size": 32, "bits": 6, "mode": "affine",
                     "model.layers.0.mlp.gate": {"group_size": 64, "bits": 8},
                     "model.layers.0.mlp.up_proj": false,
                     "model.layers.1.mlp.down_proj": {"bits": 5}}})");
  const auto c = parse_model_config(j, "config.json");
  ASSERT_TRUE(c.quantization);
  const auto& q = *c.quantization;
  EXPECT_EQ(q.resolve("model.layers.0.mlp.gate", true), (ModuleQuant{8, 64, "affine"}));
  EXPECT_EQ(q.resolve("model.layers.0.mlp.up_proj", true), std::nullopt);
  // Missing keys in a per-path dict take the mode defaults (group 64), not the global 32.
  EXPECT_EQ(q.resolve("model.layers.1.mlp.down_proj", true), (ModuleQuant{5, 64, "affine"}));
  EXPECT_EQ(q.resolve("model.layers.2.mlp.down_proj", true), (ModuleQuant{6, 32, "affine"}));
  EXPECT_EQ(q.resolve("model.norm", false), std::nullopt);
}

TEST(ModelConfig, InconsistentHeadsRejectedWithKey) {
  const ordered_json j = ordered_json::parse(R"({"model_type": "qwen3", "vocab_size": 10, "hidden_size": 8,
    "num_hidden_layers": 1, "num_attention_heads": 3, "num_key_value_heads": 2})");
  try {
    parse_model_config(j, "x/config.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_key_value_heads"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("x/config.json"), std::string::npos);
  }
}

TEST(ModelConfig, OutputConfigHasV4KeysForMlxLm) {
  const auto c = load_model_config(data_path("reference-models/qwen3moe-tiny"));
  QuantizationConfig q;
  q.global = {6, 64, "affine"};
  const auto out = config_for_output(c, DType::kBF16, q);
  EXPECT_EQ(out["rope_theta"], c.rope_theta);
  EXPECT_EQ(out["num_experts"], c.num_experts);
  EXPECT_EQ(out["torch_dtype"], "bfloat16");
  EXPECT_EQ(out["quantization"]["bits"], 6);
  EXPECT_EQ(out["quantization"], out["quantization_config"]);
}

}  // namespace
}  // namespace quantlab::io
