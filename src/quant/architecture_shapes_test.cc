// The tensor list derived from config.json alone must equal what the real checkpoints store.
#include "quant/architecture_shapes.h"

#include <gtest/gtest.h>

#include <map>

#include "core/error.h"
#include "io/safetensors.h"
#include "test_support.h"

namespace quantlab::quant {
namespace {

using testing::data_path;

std::map<std::string, SourceTensor> by_name(const std::vector<SourceTensor>& v) {
  std::map<std::string, SourceTensor> m;
  for (const auto& t : v) m[t.name] = t;
  return m;
}

class FixtureShapes : public ::testing::TestWithParam<const char*> {};

TEST_P(FixtureShapes, DerivedTensorsEqualSafetensorsHeaders) {
  const std::string dir = data_path(GetParam());
  const auto config = io::load_model_config(dir);
  const auto derived = by_name(source_tensors_from_config(config));
  const auto stored = by_name(source_tensors(io::ModelWeights::open(dir)));
  ASSERT_EQ(derived.size(), stored.size()) << dir;
  for (const auto& [name, s] : stored) {
    auto it = derived.find(name);
    ASSERT_NE(it, derived.end()) << "not derived from config: " << name;
    EXPECT_EQ(it->second.shape, s.shape) << name;
    EXPECT_EQ(it->second.dtype, s.dtype) << name;  // the config's dtype is the stored one
  }
}

INSTANTIATE_TEST_SUITE_P(AllFloatFixtures, FixtureShapes,
                         ::testing::Values("reference-models/qwen3-tiny", "reference-models/qwen3moe-tiny",
                                           "reference-models/llama-tiny",
                                           "reference-models/qwen3-tiny-lora/merged-f32",
                                           "tool-calling/dense-base-f16", "tool-calling/dense-fused-strong-f16",
                                           "tool-calling/dense-fused-gentle-f16", "tool-calling/moe-base-f16",
                                           "tool-calling/moe-fused-strong-f16"));

TEST(ArchitectureShapes, Qwen3_30B_A3B_MatchesModelSpec) {
  const auto config = io::load_model_config(data_path("configs/qwen3-30b-a3b"));
  const auto t = by_name(source_tensors_from_config(config));
  // model-spec.md §2.1 "Concrete shapes".
  EXPECT_EQ(t.at("model.layers.0.self_attn.q_proj.weight").shape, (std::vector<int64_t>{4096, 2048}));
  EXPECT_EQ(t.at("model.layers.47.self_attn.k_proj.weight").shape, (std::vector<int64_t>{512, 2048}));
  EXPECT_EQ(t.at("model.layers.3.self_attn.o_proj.weight").shape, (std::vector<int64_t>{2048, 4096}));
  EXPECT_EQ(t.at("model.layers.5.mlp.gate.weight").shape, (std::vector<int64_t>{128, 2048}));
  EXPECT_EQ(t.at("model.layers.5.mlp.experts.127.up_proj.weight").shape, (std::vector<int64_t>{768, 2048}));
  EXPECT_EQ(t.at("model.layers.5.mlp.experts.0.down_proj.weight").shape, (std::vector<int64_t>{2048, 768}));
  EXPECT_EQ(t.count("model.layers.5.mlp.gate_proj.weight"), 0u);  // every layer is sparse
  EXPECT_EQ(t.at("lm_head.weight").dtype, DType::kBF16);
  // model-spec.md §1.3 sanity: ≈ 30.5 B parameters.
  const double params = static_cast<double>(count_parameters(source_tensors_from_config(config)));
  EXPECT_NEAR(params / 1e9, 30.5, 0.1);
}

nlohmann::ordered_json tiny_llama() {
  return {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"vocab_size", 64},
          {"hidden_size", 32}, {"intermediate_size", 48}, {"num_hidden_layers", 1},
          {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"rms_norm_eps", 1e-5},
          {"tie_word_embeddings", true}, {"torch_dtype", "float32"}};
}

TEST(ArchitectureShapes, LlamaBiasesAndTiedHead) {
  auto j = tiny_llama();
  j["attention_bias"] = true;
  j["mlp_bias"] = true;
  const auto t = by_name(source_tensors_from_config(io::parse_model_config(j, "config.json")));
  EXPECT_EQ(t.at("model.layers.0.self_attn.k_proj.bias").shape, (std::vector<int64_t>{16}));  // 2 kv heads x 8
  EXPECT_EQ(t.at("model.layers.0.self_attn.o_proj.bias").shape, (std::vector<int64_t>{32}));
  EXPECT_EQ(t.at("model.layers.0.mlp.down_proj.bias").shape, (std::vector<int64_t>{32}));
  EXPECT_EQ(t.count("model.layers.0.self_attn.q_norm.weight"), 0u);  // Llama has no q/k norm
  EXPECT_EQ(t.count("lm_head.weight"), 0u);
  EXPECT_EQ(t.size(), 1u + 1 + 8 + 1 + 6 + 1);
}

TEST(ArchitectureShapes, DecoderSparseStepAndMlpOnlyLayers) {
  auto j = tiny_llama();
  j["architectures"] = {"Qwen3MoeForCausalLM"};
  j["model_type"] = "qwen3_moe";
  j["head_dim"] = 8;
  j["num_hidden_layers"] = 4;
  j["num_experts"] = 4;
  j["num_experts_per_tok"] = 2;
  j["moe_intermediate_size"] = 16;
  j["decoder_sparse_step"] = 2;
  j["mlp_only_layers"] = {3};
  const auto t = by_name(source_tensors_from_config(io::parse_model_config(j, "config.json")));
  // (i+1) % 2 == 0 -> layers 1 and 3 sparse, but 3 is forced dense.
  EXPECT_TRUE(t.count("model.layers.0.mlp.gate_proj.weight"));
  EXPECT_TRUE(t.count("model.layers.1.mlp.experts.3.down_proj.weight"));
  EXPECT_FALSE(t.count("model.layers.1.mlp.gate_proj.weight"));
  EXPECT_TRUE(t.count("model.layers.3.mlp.gate_proj.weight"));
  EXPECT_FALSE(t.count("model.layers.3.mlp.gate.weight"));
  EXPECT_TRUE(t.count("model.layers.2.self_attn.q_norm.weight"));
}

TEST(ArchitectureShapes, RejectsUnknownArchitectureAndMissingSizes) {
  auto j = tiny_llama();
  j["model_type"] = "gpt2";
  j["architectures"] = {"GPT2LMHeadModel"};
  try {
    source_tensors_from_config(io::parse_model_config(j, "x/config.json"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("x/config.json"), std::string::npos);
  }
}

}  // namespace
}  // namespace quantlab::quant
