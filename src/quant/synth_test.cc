// synth: the generated checkpoint has the config's tensors, loads and quantizes, is bit-identical for
// any thread count and chunking, and its values have the advertised statistics.
#include "quant/synth.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "quant/architecture_shapes.h"
#include "quant/convert.h"
#include "quant/quantizer.h"
#include "quant/synth_weights.h"
#include "test_support.h"

namespace quantlab::quant {
namespace {

using testing::data_path;
using testing::TempDir;

// A Qwen3-MoE config small enough for a test: 3 layers (layer 1 dense), 4 experts.
nlohmann::ordered_json tiny_moe_config() {
  auto j = synth_config("qwen3-30b-a3b", 3, DType::kBF16);
  j["vocab_size"] = 320;
  j["hidden_size"] = 128;
  j["intermediate_size"] = 192;
  j["num_attention_heads"] = 4;
  j["num_key_value_heads"] = 2;
  j["head_dim"] = 32;
  j["num_experts"] = 4;
  j["num_experts_per_tok"] = 2;
  j["moe_intermediate_size"] = 64;
  j["mlp_only_layers"] = {1};
  j["bos_token_id"] = 300;
  j["eos_token_id"] = 301;
  return j;
}

SynthReport synth(const nlohmann::ordered_json& config, const std::string& out, uint64_t seed, size_t threads,
                  DType dtype = DType::kF16, uint64_t max_shard = io::kDefaultMaxShardBytes) {
  SynthOptions o;
  o.dtype = dtype;
  o.seed = seed;
  o.show_progress = false;
  o.max_shard_bytes = max_shard;
  ThreadPool pool(threads);
  return synthesize_model(config, out, o, pool);
}

std::map<std::string, std::vector<uint8_t>> all_tensor_bytes(const std::string& dir) {
  const auto w = io::ModelWeights::open(dir);
  std::map<std::string, std::vector<uint8_t>> out;
  for (const auto& name : w.names()) {
    const auto b = w.bytes(name);
    out[name] = {b.begin(), b.end()};
  }
  return out;
}

TEST(Synth, WritesTheConfigsTensorsAndLoads) {
  TempDir tmp;
  const auto report = synth(tiny_moe_config(), tmp / "m", 1, 2, DType::kBF16);
  const auto config = io::load_model_config(tmp / "m");
  EXPECT_EQ(config.arch, io::Architecture::kQwen3Moe);
  EXPECT_EQ(config.dtype, DType::kBF16);
  EXPECT_EQ(config.num_hidden_layers, 3);
  const auto weights = io::ModelWeights::open(tmp / "m");
  const auto expected = source_tensors_from_config(config);
  ASSERT_EQ(weights.size(), expected.size());
  for (const auto& t : expected) {
    const auto& info = *weights.at(t.name).info;
    EXPECT_EQ(info.shape, t.shape) << t.name;
    EXPECT_EQ(info.dtype, DType::kBF16) << t.name;
  }
  EXPECT_EQ(report.parameters, count_parameters(expected));
  EXPECT_TRUE(std::filesystem::exists(tmp / "m/model.safetensors.index.json"));
  std::ifstream gen(tmp / "m/generation_config.json");
  const auto g = nlohmann::json::parse(gen);
  EXPECT_EQ(g["eos_token_id"], nlohmann::json({301, 300}));
}

TEST(Synth, SameSeedSameBytesForAnyThreadCountAndSharding) {
  TempDir tmp;
  synth(tiny_moe_config(), tmp / "one", 42, 1);
  synth(tiny_moe_config(), tmp / "two", 42, 2, DType::kF16, 200000);  // sharded differently too
  synth(tiny_moe_config(), tmp / "other", 43, 2);
  EXPECT_GT(io::ModelWeights::open(tmp / "two").files().size(), 1u);
  const auto one = all_tensor_bytes(tmp / "one");
  EXPECT_EQ(one, all_tensor_bytes(tmp / "two"));
  const auto other = all_tensor_bytes(tmp / "other");
  EXPECT_NE(one.at("model.layers.0.self_attn.q_proj.weight"), other.at("model.layers.0.self_attn.q_proj.weight"));
  // Different tensors of one model are different streams.
  EXPECT_NE(one.at("model.layers.0.mlp.experts.0.up_proj.weight"), one.at("model.layers.0.mlp.experts.1.up_proj.weight"));
}

TEST(Synth, AnySliceEqualsTheSameRowsOfTheWhole) {
  SynthTensorGenerator gen(5, "model.layers.0.mlp.down_proj.weight", SynthKind::kMatrix);
  std::vector<float> whole(10 * 64), part(7 * 64);
  gen.fill_rows(0, 10, 64, whole.data());
  gen.fill_rows(3, 7, 64, part.data());
  EXPECT_TRUE(std::equal(part.begin(), part.end(), whole.begin() + 3 * 64));
}

TEST(Synth, QuantizesAndTheOutputLoads) {
  TempDir tmp;
  synth(tiny_moe_config(), tmp / "f16", 3, 2);
  QuantizeOptions o;
  o.plan.bits = 6;
  o.plan.group_size = 64;
  o.show_progress = false;
  ThreadPool pool(2);
  const auto r = quantize_model(tmp / "f16", tmp / "q6", o, pool);
  const auto w = io::ModelWeights::open(tmp / "q6");
  EXPECT_EQ(w.at("model.layers.0.mlp.switch_mlp.up_proj.weight").info->shape, (std::vector<int64_t>{4, 64, 24}));  // 128 * 6 / 32
  EXPECT_EQ(w.at("model.layers.0.mlp.gate.scales").info->shape, (std::vector<int64_t>{4, 2}));  // router 8-bit g64
  EXPECT_EQ(r.output_bytes, r.plan.output_bytes());
}

std::map<std::string, std::string> all_files(const std::filesystem::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    files[e.path().filename().string()] = std::string(std::istreambuf_iterator<char>(in), {});
  }
  return files;
}

TEST(Synth, StraightToQuantizedIsSynthesizeThenQuantizeByteForByte) {
  TempDir tmp;
  synth(tiny_moe_config(), tmp / "bf16", 5, 2, DType::kBF16, 300000);
  QuantizeOptions q;
  q.plan.bits = 4;
  q.plan.group_size = 32;
  q.max_shard_bytes = 300000;
  q.show_progress = false;
  ThreadPool pool(2);
  quantize_model(tmp / "bf16", tmp / "two-steps", q, pool);

  SynthOptions o;
  o.dtype = DType::kBF16;
  o.seed = 5;
  o.show_progress = false;
  o.max_shard_bytes = 300000;
  o.quantize = q.plan;
  ThreadPool one(1);
  const SynthReport r = synthesize_model(tiny_moe_config(), tmp / "one-step", o, one);
  const auto expected = all_files(tmp / "two-steps"), got = all_files(tmp / "one-step");
  ASSERT_GT(expected.size(), 4u);  // shards, index, config, generation config
  ASSERT_EQ(got.size(), expected.size());
  for (const auto& [name, bytes] : expected) {
    ASSERT_TRUE(got.contains(name)) << name;
    EXPECT_TRUE(got.at(name) == bytes) << name << " differs";
  }
  EXPECT_EQ(r.shards.size(), expected.size() - 3);
  // A different seed gives other codes: the comparison above can fail.
  o.seed = 6;
  synthesize_model(tiny_moe_config(), tmp / "other", o, pool);
  EXPECT_NE(all_tensor_bytes(tmp / "other"), all_tensor_bytes(tmp / "one-step"));
}

TEST(SynthStatisticsTest, NormalDeviateHasUnitMomentsAndGaussianKurtosis) {
  double s1 = 0, s2 = 0, s4 = 0;
  const int n = 1 << 20;
  for (int i = 0; i < n; ++i) {
    const double z = SynthTensorGenerator::normal_from_bits(mix64(0x1234 + static_cast<uint64_t>(i)));
    s1 += z;
    s2 += z * z;
    s4 += z * z * z * z;
  }
  EXPECT_NEAR(s1 / n, 0.0, 0.005);
  EXPECT_NEAR(s2 / n, 1.0, 0.01);
  EXPECT_NEAR(s4 / n, 3.0, 0.1);  // a uniform would give 1.8, a sum of 4 uniforms 2.7
}

TEST(SynthStatisticsTest, MatrixRowsAreLogNormallyScaledWithRareOutliers) {
  const int64_t rows = 2048, cols = 1024;
  std::vector<float> v(rows * cols);
  SynthTensorGenerator(9, "model.layers.0.self_attn.q_proj.weight", SynthKind::kMatrix).fill_rows(0, rows, cols, v.data());
  int64_t outliers = 0;
  double log_sum = 0, log_sq = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double sq = 0;
    std::vector<float> row(v.begin() + r * cols, v.begin() + (r + 1) * cols);
    for (float x : row) sq += x * x;
    const double rms = std::sqrt(sq / cols);  // includes outliers: ~0.2 % more than the row scale
    for (float x : row) outliers += std::fabs(x) > 10 * rms / 1.002 ? 1 : 0;
    const double l = std::log(rms / SynthStatistics::kStd);
    log_sum += l;
    log_sq += l * l;
  }
  const double mean = log_sum / rows, sigma = std::sqrt(log_sq / rows - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.03);
  EXPECT_NEAR(sigma, SynthStatistics::kRowScaleSigma, 0.03);
  // 2M entries at 1e-4: 210 expected, Poisson sd ~14.
  EXPECT_GT(outliers, 150);
  EXPECT_LT(outliers, 270);
}

TEST(SynthStatisticsTest, NormWeightsStayNearOne) {
  std::vector<float> v(4096);
  SynthTensorGenerator(1, "model.norm.weight", SynthKind::kNorm).fill_rows(0, 1, 4096, v.data());
  double sum = 0;
  for (float x : v) {
    ASSERT_GE(x, 0.9f);
    ASSERT_LE(x, 1.1f);
    sum += x;
  }
  EXPECT_NEAR(sum / v.size(), 1.0, 0.005);
  EXPECT_LT(*std::min_element(v.begin(), v.end()), 0.905f);  // spread over the whole range
  EXPECT_GT(*std::max_element(v.begin(), v.end()), 1.095f);
}

TEST(SynthPresets, Qwen3_30B_A3B_EqualsTheHubConfig) {
  const auto preset = io::parse_model_config(synth_config("qwen3-30b-a3b", std::nullopt, DType::kBF16), "preset");
  const auto hub = io::load_model_config(data_path("configs/qwen3-30b-a3b"));
  // The same architecture means the same tensors.
  const auto a = source_tensors_from_config(preset), b = source_tensors_from_config(hub);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].shape, b[i].shape) << a[i].name;
  }
  EXPECT_EQ(preset.num_experts_per_tok, 8);
  EXPECT_TRUE(preset.norm_topk_prob);
  EXPECT_EQ(preset.rope_theta, 1e6);
}

TEST(SynthPresets, SetLayerCountKeepsPerLayerListsConsistent) {
  nlohmann::ordered_json j = {{"num_hidden_layers", 4}, {"max_window_layers", 4},
                              {"layer_types", {"full_attention", "sliding_attention", "full_attention", "x"}},
                              {"mlp_only_layers", {0, 3}}};
  set_layer_count(j, 2);
  EXPECT_EQ(j["num_hidden_layers"], 2);
  EXPECT_EQ(j["max_window_layers"], 2);
  EXPECT_EQ(j["layer_types"], nlohmann::ordered_json({"full_attention", "sliding_attention"}));
  EXPECT_EQ(j["mlp_only_layers"], nlohmann::ordered_json::array({0}));
  set_layer_count(j, 3);  // growing repeats the last layer type
  EXPECT_EQ(j["layer_types"].size(), 3u);
  EXPECT_EQ(j["layer_types"][2], "sliding_attention");
  EXPECT_THROW(set_layer_count(j, 0), Error);
}

TEST(SynthPresets, LayersOverrideAndKnownShapes) {
  const auto c = io::parse_model_config(synth_config("qwen3-0.6b", 2, DType::kF16), "preset");
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.dtype, DType::kF16);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.head_dim, 128);  // not hidden / heads = 64
  const auto eight = io::parse_model_config(synth_config("qwen3-8b", std::nullopt, DType::kBF16), "preset");
  EXPECT_EQ(count_parameters(source_tensors_from_config(eight)) / 100'000'000, 81u);  // Qwen3-8B: 8.19 B
  EXPECT_THROW(synth_config("qwen3-9b", std::nullopt, DType::kBF16), Error);
  EXPECT_THROW(synth_config("qwen3-8b", 0, DType::kBF16), Error);
}

// Issue 20: Qwen2.5-3B as published (hidden 2048, 36 layers, 16 heads / 2 KV heads, intermediate
// 11008, vocab 151936, tied embeddings): q/k/v carry biases, o_proj none, no q/k norms, and the
// parameter count is the published 3.09 B.
TEST(SynthPresets, Qwen2_5_3B_HasThePublishedShapesAndParameterCount) {
  const auto c = io::parse_model_config(synth_config("qwen2.5-3b", std::nullopt, DType::kBF16), "preset");
  EXPECT_EQ(c.arch, io::Architecture::kQwen2);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.head_dim, 128);
  const auto tensors = source_tensors_from_config(c);
  std::map<std::string, std::vector<int64_t>> shape;
  for (const auto& t : tensors) shape[t.name] = t.shape;
  EXPECT_EQ(shape.at("model.embed_tokens.weight"), (std::vector<int64_t>{151936, 2048}));
  EXPECT_EQ(shape.at("model.layers.35.self_attn.q_proj.weight"), (std::vector<int64_t>{2048, 2048}));
  EXPECT_EQ(shape.at("model.layers.35.self_attn.q_proj.bias"), (std::vector<int64_t>{2048}));
  EXPECT_EQ(shape.at("model.layers.35.self_attn.k_proj.weight"), (std::vector<int64_t>{256, 2048}));
  EXPECT_EQ(shape.at("model.layers.35.self_attn.k_proj.bias"), (std::vector<int64_t>{256}));
  EXPECT_EQ(shape.at("model.layers.35.self_attn.v_proj.bias"), (std::vector<int64_t>{256}));
  EXPECT_EQ(shape.count("model.layers.35.self_attn.o_proj.bias"), 0u);
  EXPECT_EQ(shape.count("model.layers.35.self_attn.q_norm.weight"), 0u);
  EXPECT_EQ(shape.at("model.layers.35.mlp.down_proj.weight"), (std::vector<int64_t>{2048, 11008}));
  EXPECT_EQ(shape.count("lm_head.weight"), 0u);  // tied
  EXPECT_EQ(shape.count("model.layers.36.input_layernorm.weight"), 0u);
  // Per layer: q, k, v, o with the three biases, the MLP and two norms; plus embedding and final norm.
  const uint64_t per_layer = 2048ull * 2048 + 2048 + 2 * (256ull * 2048 + 256) + 2048ull * 2048 +
                             3ull * 2048 * 11008 + 2 * 2048;
  EXPECT_EQ(count_parameters(tensors), 151936ull * 2048 + 36 * per_layer + 2048);
  EXPECT_EQ(count_parameters(tensors) / 10'000'000, 308u);  // 3.09 B
  const auto seven = io::parse_model_config(synth_config("qwen2.5-7b", std::nullopt, DType::kBF16), "preset");
  EXPECT_FALSE(seven.tie_word_embeddings);
  EXPECT_EQ(count_parameters(source_tensors_from_config(seven)) / 10'000'000, 761u);  // 7.61 B
  const auto half = io::parse_model_config(synth_config("qwen2.5-0.5b", std::nullopt, DType::kBF16), "preset");
  EXPECT_EQ(count_parameters(source_tensors_from_config(half)) / 1'000'000, 494u);  // 0.49 B
}

}  // namespace
}  // namespace quantlab::quant
