#include "quant/gptq_low_rank.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "kernels/affine_reference.h"
#include "kernels/kernels.h"
#include "quant/testing.h"

namespace quantlab::quant {
namespace {

// An expert's view of calibration: fewer tokens than input columns, channels of unequal scale with a
// shared component (what makes the error feedback matter), a few columns no token reaches.
struct Expert {
  size_t rows = 20, cols = 576, tokens = 150;  // 576: four blocks of 128 and a partial one; 2·150 + 128 < 576
  std::vector<float> w, x;                      // [rows, cols], [tokens, cols]
};

Expert make_expert(uint32_t seed, size_t tokens = 150) {
  Expert e;
  e.tokens = tokens;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  e.w.resize(e.rows * e.cols);
  for (float& v : e.w) v = 0.05f * normal(rng) + (normal(rng) > 2.5f ? 0.3f * normal(rng) : 0.0f);
  e.x.resize(e.tokens * e.cols);
  for (size_t t = 0; t < e.tokens; ++t) {
    const float shared = normal(rng);
    for (size_t c = 0; c < e.cols; ++c) {
      const float scale = c % 97 == 5 ? 0.0f : c % 17 == 0 ? 6.0f : 0.5f + static_cast<float>(c % 5) * 0.25f;
      e.x[t * e.cols + c] = scale * (0.6f * shared + 0.8f * normal(rng));
    }
  }
  return e;
}

// The rows rounded with `factor`, read back through MLX's dequantization.
std::vector<float> rounded(const Expert& e, const GptqFactor& factor, int bits, int group = 64) {
  const size_t words = e.cols * bits / 32, groups = e.cols / group;
  std::vector<uint32_t> packed(e.rows * words);
  std::vector<float> scales(e.rows * groups), biases(e.rows * groups), out(e.w.size());
  GptqScratch scratch;
  gptq_quantize_rows(factor, e.w.data(), e.rows, bits, group, DType::kF16, packed.data(), scales.data(),
                     biases.data(), scratch);
  for (size_t r = 0; r < e.rows; ++r)
    kernels::dequantize_row_reference(packed.data() + r * words, scales.data() + r * groups,
                                      biases.data() + r * groups, e.cols, bits, group, out.data() + r * e.cols);
  return out;
}

TEST(GptqLowRank, SameRoundingAsTheDenseForm) {
  for (bool act_order : {false, true}) {
    const Expert e = make_expert(7);
    ThreadPool pool(2);
    const auto h = second_moments_of(e.x, e.tokens, e.cols, pool);
    GptqOptions options;
    options.act_order = act_order;
    const GptqFactor low = gptq_low_rank_factor(e.x, e.tokens, e.cols, options, pool);
    const GptqFactor dense = gptq_factor(h, e.cols, options, pool);
    ASSERT_EQ(low.rank, e.tokens);
    EXPECT_EQ(low.order, dense.order);
    EXPECT_TRUE(low.rest_transposed.empty());
    // U's diagonal blocks are the dense factor's, to float rounding.
    for (size_t k = 0; k < e.cols; ++k) {
      const size_t b0 = k / kGptqBlock * kGptqBlock;
      for (size_t j = k; j < std::min(e.cols, b0 + kGptqBlock); ++j) {
        const float want = dense.u[k * e.cols + j];
        ASSERT_NEAR(low.u[k * kGptqBlock + (j - b0)], want, 2e-3f * std::abs(dense.u[k * e.cols + k]) + 1e-6f)
            << "U[" << k << ", " << j << "], act_order " << act_order;
      }
    }
    for (int bits : {2, 3, 4, 8}) {
      const auto a = rounded(e, low, bits), b = rounded(e, dense, bits);
      size_t differ = 0;
      for (size_t i = 0; i < a.size(); ++i) differ += a[i] != b[i];
      // Float rounding may tip a value lying on a rounding boundary, nothing more.
      EXPECT_LE(differ, a.size() / 100) << bits << "-bit, act_order " << act_order;
      const double error_low = weighted_error(e.w, a, h, e.rows, e.cols);
      const double error_dense = weighted_error(e.w, b, h, e.rows, e.cols);
      EXPECT_NEAR(error_low, error_dense, 0.01 * error_dense) << bits << "-bit";
    }
  }
}

TEST(GptqLowRank, LowerWeightedErrorThanRoundToNearestAtEveryWidth) {
  const Expert e = make_expert(11);
  ThreadPool pool(1);
  const auto h = second_moments_of(e.x, e.tokens, e.cols, pool);
  const GptqFactor low = gptq_low_rank_factor(e.x, e.tokens, e.cols, {}, pool);
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    const double gptq = weighted_error(e.w, rounded(e, low, bits), h, e.rows, e.cols);
    const double rtn =
        weighted_error(e.w, test_helpers::nearest_dequantized(e.w, e.rows, e.cols, bits, 64), h, e.rows, e.cols);
    EXPECT_LT(gptq, 0.9 * rtn) << bits << "-bit";
  }
}

TEST(GptqLowRank, SameFactorForAnyThreadCount) {
  const Expert e = make_expert(3);
  ThreadPool one(1), two(2);
  const GptqFactor a = gptq_low_rank_factor(e.x, e.tokens, e.cols, {}, one);
  const GptqFactor b = gptq_low_rank_factor(e.x, e.tokens, e.cols, {}, two);
  EXPECT_EQ(a.u, b.u);
  EXPECT_EQ(a.w_blocks, b.w_blocks);
  EXPECT_EQ(a.g_blocks, b.g_blocks);
}

TEST(GptqLowRank, ExpertInputsAreTheRowsRoutedToIt) {
  RoutedInputs in;
  in.rows = 3;
  in.cols = 2;
  in.route_width = 2;
  const float values[6] = {1.0f, -2.0f, 0.5f, 3.0f, 8.0f, -0.25f};  // exact in bfloat16
  in.values.resize(6);
  kernels::convert_f32_to_bf16(values, 6, in.values.data());
  in.routes = {0, 2, 2, 1, 1, 0};
  EXPECT_EQ(expert_inputs(in, 0), (std::vector<float>{1.0f, -2.0f, 8.0f, -0.25f}));
  EXPECT_EQ(expert_inputs(in, 1), (std::vector<float>{0.5f, 3.0f, 8.0f, -0.25f}));
  EXPECT_EQ(expert_inputs(in, 2), (std::vector<float>{1.0f, -2.0f, 0.5f, 3.0f}));
  EXPECT_TRUE(expert_inputs(in, 3).empty());
}

TEST(GptqLowRank, PaysOnlyWithFewTokens) {
  EXPECT_TRUE(low_rank_pays(256, 2048));   // a Qwen3-30B-A3B expert's gate/up at 4K calibration tokens
  EXPECT_TRUE(low_rank_pays(256, 768));    // ... and its down_proj
  EXPECT_FALSE(low_rank_pays(4096, 2048));
  EXPECT_FALSE(low_rank_pays(40, 128));    // the bundled tiny MoE: the dense form is cheaper
}

TEST(GptqLowRank, RefusesNonFiniteInputs) {
  Expert e = make_expert(5);
  e.x[17] = std::nanf("");
  ThreadPool pool(1);
  EXPECT_THROW(gptq_low_rank_factor(e.x, e.tokens, e.cols, {}, pool), Error);
}

}  // namespace
}  // namespace quantlab::quant
