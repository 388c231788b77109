// Loading: the layer plan read from config.json, and bad model directories failing with a message that
// names what is wrong.
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/half.h"
#include "io/model_config.h"
#include "model/model.h"
#include "model/session.h"
#include "model/testing.h"

namespace quantlab::model {
namespace {

using testing::data_path;
using testing::ModelEdit;
using testing::TempDir;
using testing::write_edited_model;

TEST(ModelLoad, ReadsTheLayerPlanFromConfig) {
  const Model moe = Model::load(data_path("reference-models/qwen3moe-tiny"));
  ASSERT_EQ(moe.layers().size(), 3u);
  // mlp_only_layers [1]: layer 1 is dense, 0 and 2 sparse.
  EXPECT_TRUE(moe.layers()[0].is_moe);
  EXPECT_FALSE(moe.layers()[1].is_moe);
  EXPECT_TRUE(moe.layers()[2].is_moe);
  EXPECT_EQ(moe.layers()[0].moe.gate.size(), 8u);
  EXPECT_EQ(moe.dims().experts_per_token, 2u);
  EXPECT_TRUE(moe.dims().norm_topk_prob);
  EXPECT_EQ(moe.layers()[0].attention.q_norm.size(), 32u);
  EXPECT_NE(moe.output().weight.data, moe.embedding().data);  // untied
  EXPECT_EQ(moe.embedding().type, kernels::WeightType::kF16);

  const Model qwen = Model::load(data_path("reference-models/qwen3-tiny"));
  EXPECT_EQ(qwen.output().weight.data, qwen.embedding().data);  // tied
  EXPECT_EQ(qwen.embedding().type, kernels::WeightType::kBF16);

  const Model llama = Model::load(data_path("reference-models/llama-tiny"));
  EXPECT_TRUE(llama.layers()[0].attention.q_norm.empty());
  EXPECT_EQ(llama.embedding().type, kernels::WeightType::kF32);
}

// Loads a copy of `src` changed by `edit` and returns the error it must raise.
Error load_error(const std::string& src, const ModelEdit& edit) {
  TempDir tmp;
  write_edited_model(data_path(src), (tmp / "m"), edit);
  try {
    Model::load((tmp / "m"));
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "loading the edited " << src << " did not fail";
  return Error(ErrorKind::kInternal, "");
}

void expect_mentions(const Error& e, ErrorKind kind, std::initializer_list<const char*> words) {
  EXPECT_EQ(e.kind(), kind) << e.what();
  for (const char* w : words) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << "'" << w << "' not in: " << e.what();
}

std::vector<uint8_t> zeros_f16(size_t n) { return std::vector<uint8_t>(n * 2, 0); }

TEST(ModelLoad, MissingTensorIsNamed) {
  ModelEdit edit;
  edit.drop = {"model.layers.1.self_attn.k_norm.weight"};
  expect_mentions(load_error("reference-models/qwen3-tiny", edit), ErrorKind::kInvalidInput,
                  {"missing tensor", "model.layers.1.self_attn.k_norm.weight"});
}

TEST(ModelLoad, MissingExpertIsNamed) {
  ModelEdit edit;
  edit.drop = {"model.layers.2.mlp.experts.7.down_proj.weight"};
  expect_mentions(load_error("reference-models/qwen3moe-tiny", edit), ErrorKind::kInvalidInput,
                  {"model.layers.2.mlp.experts.7.down_proj.weight"});
}

TEST(ModelLoad, WrongShapeIsNamed) {
  ModelEdit edit;
  edit.put["model.layers.0.self_attn.v_proj.weight"] = {DType::kF16, {32, 128}, zeros_f16(32 * 128)};
  expect_mentions(load_error("reference-models/qwen3moe-tiny", edit), ErrorKind::kInvalidInput,
                  {"model.layers.0.self_attn.v_proj.weight", "[32, 128]", "[64, 128]"});
}

TEST(ModelLoad, ConfigContradictingWeightsIsReported) {
  {  // head_dim 16 makes q_proj [64, 128], but the file holds [128, 128].
    ModelEdit edit;
    edit.config = [](auto& c) { c["head_dim"] = 16; };
    expect_mentions(load_error("reference-models/llama-tiny", edit), ErrorKind::kInvalidInput,
                    {"q_proj.weight", "[128, 128]", "[64, 128]", "config.json"});
  }
  {  // One layer fewer than the file holds: layer 1's tensors are left over.
    ModelEdit edit;
    edit.config = [](auto& c) { c["num_hidden_layers"] = 1; };
    expect_mentions(load_error("reference-models/llama-tiny", edit), ErrorKind::kInvalidInput,
                    {"model.layers.1.", "1 layers"});
  }
  {  // vocab_size disagrees with the embedding.
    ModelEdit edit;
    edit.config = [](auto& c) { c["vocab_size"] = 600; };
    expect_mentions(load_error("reference-models/qwen3-tiny", edit), ErrorKind::kInvalidInput,
                    {"model.embed_tokens.weight", "[512, 128]", "[600, 128]"});
  }
  {  // Untied in the config, but the checkpoint has no lm_head.
    ModelEdit edit;
    edit.config = [](auto& c) { c["tie_word_embeddings"] = false; };
    expect_mentions(load_error("reference-models/qwen3-tiny", edit), ErrorKind::kInvalidInput,
                    {"missing tensor", "lm_head.weight"});
  }
  {  // Fewer experts in the config than in the file: the router's shape disagrees.
    ModelEdit edit;
    edit.config = [](auto& c) { c["num_local_experts"] = 4; };
    expect_mentions(load_error("reference-models/qwen3moe-tiny", edit), ErrorKind::kInvalidInput,
                    {"model.layers.0.mlp.gate.weight", "[8, 128]", "[4, 128]"});
  }
  {  // An expert beyond num_experts (router consistent): the extra tensors are reported.
    ModelEdit edit;
    edit.put["model.layers.0.mlp.experts.8.up_proj.weight"] = {DType::kF16, {64, 128}, zeros_f16(64 * 128)};
    expect_mentions(load_error("reference-models/qwen3moe-tiny", edit), ErrorKind::kInvalidInput,
                    {"model.layers.0.mlp.experts.8.up_proj.weight", "8 experts"});
  }
}

TEST(ModelLoad, QuantizedTensorsWithoutQuantizationBlockAreRejected) {
  ModelEdit edit;
  edit.put["model.layers.0.mlp.down_proj.scales"] = {DType::kF32, {128, 6}, std::vector<uint8_t>(128 * 6 * 4)};
  expect_mentions(load_error("reference-models/llama-tiny", edit), ErrorKind::kInvalidInput,
                  {"model.layers.0.mlp.down_proj.scales", "quantization"});
}

TEST(ModelLoad, UnsupportedArchitectureIsNamed) {
  ModelEdit edit;
  edit.config = [](auto& c) {
    c["model_type"] = "gpt2";
    c["architectures"] = {"GPT2LMHeadModel"};
  };
  expect_mentions(load_error("reference-models/llama-tiny", edit), ErrorKind::kUnsupported,
                  {"GPT2LMHeadModel", "gpt2", "not supported"});
}

TEST(ModelLoad, UnsupportedRopeScalingIsNamed) {
  ModelEdit edit;
  edit.config = [](auto& c) { c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}}; };
  expect_mentions(load_error("reference-models/llama-tiny", edit), ErrorKind::kUnsupported, {"yarn"});
}

TEST(ModelLoad, WrongDtypeIsNamed) {
  ModelEdit edit;
  edit.put["model.norm.weight"] = {DType::kI32, {128}, std::vector<uint8_t>(128 * 4)};
  expect_mentions(load_error("reference-models/llama-tiny", edit), ErrorKind::kInvalidInput,
                  {"model.norm.weight", "I32"});
}

// Issue 20: Qwen2 in transformers v5 spelling (dtype, rope_parameters) runs exactly as in v4 spelling;
// a checkpoint that turns sliding-window attention on is refused by name; a Qwen2 checkpoint without
// its q/k/v biases names the missing tensor.
TEST(ModelLoad, Qwen2ConfigSpellingsSlidingWindowAndBiases) {
  TempDir tmp;
  ModelEdit v5;
  v5.config = [](auto& c) {
    c["dtype"] = c["torch_dtype"];
    c.erase("torch_dtype");
    c["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", c["rope_theta"]}};
    c.erase("rope_theta");
  };
  write_edited_model(data_path("reference-models/qwen2-tiny"), tmp / "v5", v5);
  const Model a = Model::load(data_path("reference-models/qwen2-tiny")), b = Model::load(tmp / "v5");
  EXPECT_EQ(io::load_model_config(tmp / "v5").rope_theta, 1e6);
  ThreadPool pool(1);
  Session sa(a, pool), sb(b, pool);
  const std::vector<int32_t> ids = {1, 2, 3, 4};
  EXPECT_EQ(sa.forward(ids, true), sb.forward(ids, true));
  ModelEdit sliding;
  sliding.config = [](auto& c) { c["use_sliding_window"] = true; };
  expect_mentions(load_error("reference-models/qwen2-tiny", sliding), ErrorKind::kUnsupported,
                  {"use_sliding_window", "not supported"});
  ModelEdit no_bias;
  no_bias.drop = {"model.layers.1.self_attn.k_proj.bias"};
  expect_mentions(load_error("reference-models/qwen2-tiny", no_bias), ErrorKind::kInvalidInput,
                  {"model.layers.1.self_attn.k_proj.bias"});
}

TEST(ModelLoad, MissingDirectoryFails) {
  EXPECT_THROW(Model::load(data_path("reference-models/does-not-exist")), Error);
}

// A tied checkpoint that still carries an lm_head copy loads (the copy is ignored, as mlx-lm does),
// and Llama attention/MLP biases are honoured when the config asks for them.
TEST(ModelLoad, BiasesAreLoadedWhenConfigured) {
  TempDir tmp;
  ModelEdit edit;
  edit.config = [](auto& c) { c["attention_bias"] = true; };
  std::vector<uint8_t> bias(128 * 4);
  const float one = 1.0f;
  for (size_t i = 0; i < 128; ++i) std::memcpy(bias.data() + i * 4, &one, 4);
  for (const char* p : {"q_proj", "o_proj"})
    for (int l = 0; l < 2; ++l)
      edit.put[fmt::format("model.layers.{}.self_attn.{}.bias", l, p)] = {DType::kF32, {128}, bias};
  for (const char* p : {"k_proj", "v_proj"})
    for (int l = 0; l < 2; ++l)
      edit.put[fmt::format("model.layers.{}.self_attn.{}.bias", l, p)] = {DType::kF32, {64}, std::vector<uint8_t>(64 * 4)};
  write_edited_model(data_path("reference-models/llama-tiny"), (tmp / "m"), edit);
  const Model m = Model::load((tmp / "m"));
  EXPECT_EQ(m.layers()[1].attention.q.bias, std::vector<float>(128, 1.0f));
  EXPECT_EQ(m.layers()[1].attention.k.bias.size(), 64u);
  EXPECT_TRUE(m.layers()[1].mlp.gate.bias.empty());
}

}  // namespace
}  // namespace quantlab::model
