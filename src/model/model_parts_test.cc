// Unit tests of the parts around the forward pass: RoPE frequencies and scaling, MoE routing, the
// sampler and stop tokens.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <numbers>

#include "core/error.h"
#include "model/blocks.h"
#include "model/generation.h"
#include "model/rope.h"
#include "model/sampler.h"
#include "model/testing.h"

namespace quantlab::model {
namespace {

using testing::data_path;

io::ModelConfig rope_config(double theta, std::optional<io::RopeScaling> scaling) {
  io::ModelConfig c;
  c.path = "config.json";
  c.head_dim = 64;
  c.rope_theta = theta;
  c.rope_scaling = scaling;
  return c;
}

TEST(Rope, DefaultFrequenciesFollowTheta) {
  const RopeFrequencies rope(rope_config(10000.0, std::nullopt));
  ASSERT_EQ(rope.pairs(), 32u);
  for (size_t j = 0; j < 32; ++j)
    EXPECT_NEAR(rope.inv_freq()[j], std::pow(10000.0, -2.0 * j / 64.0), 1e-7 * std::pow(10000.0, -2.0 * j / 64.0));
  std::vector<float> c(32), s(32);
  rope.at(7, c.data(), s.data());
  EXPECT_FLOAT_EQ(c[0], std::cos(7.0f));
  EXPECT_FLOAT_EQ(s[0], std::sin(7.0f));
}

TEST(Rope, LinearScalingDividesEveryFrequency) {
  io::RopeScaling s;
  s.type = "linear";
  s.factor = 4.0;
  const RopeFrequencies plain(rope_config(10000.0, std::nullopt)), scaled(rope_config(10000.0, s));
  for (size_t j = 0; j < 32; ++j) EXPECT_FLOAT_EQ(scaled.inv_freq()[j], plain.inv_freq()[j] / 4.0f);
}

// Llama 3.1 (factor 8, low 1, high 4, original 8192): short wavelengths untouched, long ones divided
// by the factor, the band between interpolated.
TEST(Rope, Llama3ScalingHasThreeBands) {
  io::RopeScaling s;
  s.type = "llama3";
  s.factor = 8.0;
  s.low_freq_factor = 1.0;
  s.high_freq_factor = 4.0;
  s.original_max_position_embeddings = 8192;
  const RopeFrequencies plain(rope_config(500000.0, std::nullopt)), scaled(rope_config(500000.0, s));
  int kept = 0, divided = 0, mixed = 0;
  for (size_t j = 0; j < 32; ++j) {
    const double inv = plain.inv_freq()[j], wavelen = 2 * std::numbers::pi / inv;
    const double got = scaled.inv_freq()[j];
    if (wavelen < 8192.0 / 4) {
      EXPECT_FLOAT_EQ(got, inv);
      ++kept;
    } else if (wavelen > 8192.0) {
      EXPECT_FLOAT_EQ(got, inv / 8);
      ++divided;
    } else {
      const double smooth = (8192.0 / wavelen - 1.0) / 3.0;
      EXPECT_NEAR(got, (1 - smooth) * inv / 8 + smooth * inv, 1e-6 * inv);
      EXPECT_LT(got, inv);
      EXPECT_GT(got, inv / 8);
      ++mixed;
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(mixed, 0);
}

ModelDims routing_dims(size_t experts, size_t k, bool norm) {
  ModelDims d;
  d.experts = experts;
  d.experts_per_token = k;
  d.norm_topk_prob = norm;
  return d;
}

TEST(Routing, TopKOfSoftmaxWithOptionalRenormalisation) {
  const std::vector<float> logits = {0.0f, 2.0f, -1.0f, 1.0f};
  double total = 0;
  for (float l : logits) total += std::exp(l);
  for (bool norm : {false, true}) {
    std::vector<float> work = logits;
    int32_t experts[2];
    float weights[2];
    route_token(work.data(), routing_dims(4, 2, norm), experts, weights);
    EXPECT_EQ(experts[0], 1);
    EXPECT_EQ(experts[1], 3);
    const double p1 = std::exp(2.0) / total, p3 = std::exp(1.0) / total;
    if (norm) {
      EXPECT_NEAR(weights[0], p1 / (p1 + p3), 1e-6);
      EXPECT_NEAR(weights[1], p3 / (p1 + p3), 1e-6);
    } else {  // HF's default: the raw softmax probabilities, not summing to one.
      EXPECT_NEAR(weights[0], p1, 1e-6);
      EXPECT_NEAR(weights[1], p3, 1e-6);
    }
  }
}

TEST(Routing, TiesGoToTheLowerExpert) {
  std::vector<float> logits = {1.0f, 3.0f, 3.0f, 3.0f};
  int32_t experts[2];
  float weights[2];
  route_token(logits.data(), routing_dims(4, 2, true), experts, weights);
  EXPECT_EQ(experts[0], 1);
  EXPECT_EQ(experts[1], 2);
  EXPECT_FLOAT_EQ(weights[0], 0.5f);
}

TEST(Sampler, GreedyIsArgmaxWithLowestIdOnTies) {
  Sampler s({});
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(s.sample(logits), 1);
}

TEST(Sampler, TopKOfOneIsGreedyAtAnyTemperature) {
  Sampler s({.temperature = 5.0f, .top_k = 1, .seed = 3});
  const std::vector<float> logits = {0.1f, 0.3f, 0.2f};
  for (int i = 0; i < 50; ++i) EXPECT_EQ(s.sample(logits), 1);
}

TEST(Sampler, SameSeedSameSequenceDifferentSeedDifferentSequence) {
  const std::vector<float> logits = {1.0f, 1.1f, 0.9f, 1.2f, 0.7f, 1.0f};
  auto run = [&](uint64_t seed) {
    Sampler s({.temperature = 1.0f, .seed = seed});
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) out.push_back(s.sample(logits));
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

// Frequencies follow softmax(logits / T): 40000 draws, each within 5 standard errors.
TEST(Sampler, FrequenciesFollowTemperedSoftmax) {
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f};
  const float temperature = 2.0f;
  Sampler s({.temperature = temperature, .seed = 7});
  std::map<int32_t, int> counts;
  const int n = 40000;
  for (int i = 0; i < n; ++i) ++counts[s.sample(logits)];
  double z = 0;
  for (float l : logits) z += std::exp(l / temperature);
  for (int32_t id = 0; id < 3; ++id) {
    const double p = std::exp(logits[id] / temperature) / z;
    EXPECT_NEAR(counts[id] / double(n), p, 5 * std::sqrt(p * (1 - p) / n)) << "token " << id;
  }
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  // Probabilities ~0.665, 0.245, 0.090 at T=1: top_p 0.8 keeps the first two only.
  const std::vector<float> logits = {2.0f, 1.0f, 0.0f};
  Sampler s({.temperature = 1.0f, .top_p = 0.8f, .seed = 11});
  std::map<int32_t, int> counts;
  for (int i = 0; i < 5000; ++i) ++counts[s.sample(logits)];
  EXPECT_EQ(counts[2], 0);
  EXPECT_GT(counts[1], 0);
  EXPECT_GT(counts[0], counts[1]);
}

TEST(Sampler, RejectsBadOptions) {
  EXPECT_THROW(Sampler({.temperature = -1.0f}), Error);
  EXPECT_THROW(Sampler({.top_k = -2}), Error);
  EXPECT_THROW(Sampler({.top_p = 0.0f}), Error);
  EXPECT_THROW(Sampler({.top_p = 1.5f}), Error);
}

}  // namespace
}  // namespace quantlab::model
