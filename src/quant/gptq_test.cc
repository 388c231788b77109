#include "quant/gptq.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "kernels/affine_reference.h"
#include "quant/cholesky.h"
#include "quant/convert.h"
#include "quant/testing.h"

namespace quantlab::quant {
namespace {

// Fixed data with what makes GPTQ matter in real layers: correlated input channels of very different
// scales (activations with outlier channels), weights with a few large values.
struct Layer {
  size_t rows = 24, cols = 320, tokens = 512;  // 320: two whole blocks of 128 and a partial one
  std::vector<float> w;
  std::vector<double> h;  // E[x xᵀ]
};

Layer make_layer(uint32_t seed) {
  Layer l;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  l.w.resize(l.rows * l.cols);
  for (float& v : l.w) v = 0.05f * normal(rng) + (normal(rng) > 2.5f ? 0.3f * normal(rng) : 0.0f);
  std::vector<float> channel_scale(l.cols);
  for (size_t c = 0; c < l.cols; ++c) channel_scale[c] = c % 17 == 0 ? 8.0f : 0.5f + static_cast<float>(c % 5) * 0.25f;
  std::vector<double> x(l.cols);
  l.h.assign(l.cols * l.cols, 0.0);
  for (size_t t = 0; t < l.tokens; ++t) {
    const float shared = normal(rng);  // a common component correlates every channel
    for (size_t c = 0; c < l.cols; ++c) x[c] = channel_scale[c] * (0.6f * shared + 0.8f * normal(rng));
    for (size_t i = 0; i < l.cols; ++i)
      for (size_t j = 0; j < l.cols; ++j) l.h[i * l.cols + j] += x[i] * x[j] / static_cast<double>(l.tokens);
  }
  return l;
}

// Round-to-nearest as MLX stores it.
std::vector<float> rtn_dequantized(const Layer& l, int bits, int group) {
  return test_helpers::nearest_dequantized(l.w, l.rows, l.cols, bits, group);
}

std::vector<float> gptq_dequantized(const Layer& l, const std::vector<double>& h, int bits, int group,
                                    const GptqOptions& options) {
  const GptqFactor factor = gptq_factor(h, l.cols, options);
  std::vector<float> out(l.w.size());
  const size_t words = l.cols * bits / 32, groups = l.cols / group;
  std::vector<uint32_t> packed(l.rows * words);
  std::vector<float> scales(l.rows * groups), biases(l.rows * groups);
  GptqScratch scratch;
  gptq_quantize_rows(factor, l.w.data(), l.rows, bits, group, DType::kF16, packed.data(), scales.data(),
                     biases.data(), scratch);
  // What is stored must be float16 values: storing them loses nothing.
  std::vector<float> stored = scales;
  round_to_dtype(stored.data(), stored.size(), DType::kF16);
  EXPECT_EQ(stored, scales);
  // Read back through MLX's dequantization, not through anything of GPTQ's own.
  for (size_t r = 0; r < l.rows; ++r)
    kernels::dequantize_row_reference(packed.data() + r * words, scales.data() + r * groups,
                                      biases.data() + r * groups, l.cols, bits, group, out.data() + r * l.cols);
  return out;
}

TEST(Cholesky, FactorAndInverseOfTheRecursionMatchTheMatrix) {
  // 400 columns: two levels of the recursion (400 → 208 + 192, 208 → 112 + 96), uneven splits.
  const size_t n = 400;
  std::mt19937 rng(21);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> g(n * n), a(n * n, 0.0f);
  for (float& v : g) v = normal(rng);
  for (size_t i = 0; i < n; ++i)  // A = G Gᵀ / n + 0.1 I: positive definite, condition number ~ 10⁴
    for (size_t j = 0; j <= i; ++j) {
      double sum = 0;
      for (size_t k = 0; k < n; ++k) sum += static_cast<double>(g[i * n + k]) * g[j * n + k];
      a[i * n + j] = a[j * n + i] = static_cast<float>(sum / n + (i == j ? 0.1 : 0.0));
    }
  CholeskyWithInverse one, two;
  ThreadPool pool1(1), pool2(2);
  ASSERT_TRUE(cholesky_with_inverse(a, n, pool1, one));
  ASSERT_TRUE(cholesky_with_inverse(a, n, pool2, two));
  EXPECT_EQ(one.lower, two.lower);  // the same for any thread count
  EXPECT_EQ(one.inverse, two.inverse);
  double worst_product = 0, worst_identity = 0;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) {
      double llt = 0, lx = 0;
      for (size_t k = 0; k < n; ++k) {
        llt += static_cast<double>(one.lower[i * n + k]) * one.lower[j * n + k];
        lx += static_cast<double>(one.lower[i * n + k]) * one.inverse[k * n + j];
      }
      worst_product = std::max(worst_product, std::abs(llt - a[i * n + j]));
      worst_identity = std::max(worst_identity, std::abs(lx - (i == j ? 1.0 : 0.0)));
      if (j > i) {
        EXPECT_EQ(one.lower[i * n + j], 0.0f);
        EXPECT_EQ(one.inverse[i * n + j], 0.0f);
      }
    }
  EXPECT_LT(worst_product, 1e-4);
  EXPECT_LT(worst_identity, 1e-3);
  a[5 * n + 5] = -1.0f;  // no longer positive definite
  EXPECT_FALSE(cholesky_with_inverse(a, n, pool1, one));
}

TEST(Gptq, LowerWeightedOutputErrorThanRoundToNearestAtEveryWidth) {
  const Layer l = make_layer(7);
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    for (bool act_order : {false, true}) {
      SCOPED_TRACE(testing::Message() << bits << " bits, act-order " << act_order);
      const double rtn = weighted_error(l.w, rtn_dequantized(l, bits, 64), l.h, l.rows, l.cols);
      const double gptq = weighted_error(l.w, gptq_dequantized(l, l.h, bits, 64, {0.01, act_order}), l.h, l.rows, l.cols);
      EXPECT_LT(gptq, 0.9 * rtn) << "rtn " << rtn << " gptq " << gptq;
    }
  }
}

// The textbook algorithm, one column at a time with the whole remaining row updated after each: the
// blocked implementation must be the same arithmetic reordered.
std::vector<float> unblocked_dequantized(const Layer& l, int bits, int group) {
  const GptqFactor f = gptq_factor(l.h, l.cols, {});
  const size_t n = l.cols;
  std::vector<float> out(l.w.size());
  for (size_t r = 0; r < l.rows; ++r) {
    std::vector<float> x(l.w.begin() + r * n, l.w.begin() + (r + 1) * n);
    kernels::AffineGroupParams p;
    for (size_t k = 0; k < n; ++k) {
      if (k % group == 0) {
        std::vector<uint8_t> codes(group);
        p = kernels::quantize_group_reference(x.data() + k, group, bits, codes.data());
        round_to_dtype(&p.scale, 1, DType::kF16);
        round_to_dtype(&p.bias, 1, DType::kF16);
      }
      const float q = std::clamp(std::rint((x[k] - p.bias) / p.scale), 0.0f, float((1 << bits) - 1));
      out[r * n + k] = std::fma(q, p.scale, p.bias);
      const float err = (x[k] - out[r * n + k]) / f.u[k * n + k];
      for (size_t m = k + 1; m < n; ++m) x[m] -= err * f.u[k * n + m];
    }
  }
  return out;
}

TEST(Gptq, BlockedIsTheTextbookAlgorithmReordered) {
  const Layer l = make_layer(9);
  const auto blocked = gptq_dequantized(l, l.h, 4, 64, {});
  const auto textbook = unblocked_dequantized(l, 4, 64);
  size_t same = 0;
  for (size_t i = 0; i < blocked.size(); ++i) same += blocked[i] == textbook[i];
  // Float sums in another order flip a code only where the value sits at a rounding midpoint.
  EXPECT_GT(static_cast<double>(same) / blocked.size(), 0.99);
}

TEST(Gptq, WithUncorrelatedEqualInputsItIsRoundToNearest) {
  // H = I: no error has anywhere to go, so every code is the nearest one for its group's stored fit.
  const Layer l = make_layer(3);
  std::vector<double> identity(l.cols * l.cols, 0.0);
  for (size_t i = 0; i < l.cols; ++i) identity[i * l.cols + i] = 1.0;
  const auto gptq = gptq_dequantized(l, identity, 4, 32, {});
  const auto rtn = rtn_dequantized(l, 4, 32);
  double differing = 0;
  for (size_t i = 0; i < gptq.size(); ++i) differing += gptq[i] != rtn[i];
  // Codes chosen with the float16 scale instead of the unrounded one differ only at exact midpoints.
  EXPECT_LT(differing / gptq.size(), 0.02);
}

TEST(Gptq, DeadColumnsAndIndefiniteMomentsAreHandled) {
  Layer l = make_layer(5);
  for (size_t j = 0; j < l.cols; ++j) l.h[3 * l.cols + j] = l.h[j * l.cols + 3] = 0;  // channel 3 never fired
  EXPECT_NO_THROW(gptq_dequantized(l, l.h, 4, 64, {}));
  std::vector<double> bad = l.h;
  bad[5] = std::nan("");
  EXPECT_THROW(gptq_factor(bad, l.cols, {}), Error);
}

TEST(Gptq, DeltaWeightingMovesErrorOutOfTheFineTunesDirections) {
  // A rank-2 fine-tune smaller than half a 3-bit step, as LoRA deltas are. Delta weighting adds
  // ‖(W − Ŵ)ΔWᵀ‖² to GPTQ's objective: the error on inputs along the directions the fine-tune reads
  // (the rows of ΔW) must drop well below plain GPTQ's, at a bounded cost in the plain output error,
  // which must stay below round-to-nearest's.
  const Layer base = make_layer(11);
  std::mt19937 rng(12);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> a(2 * base.cols), b(base.rows * 2), delta(base.w.size());
  for (float& v : a) v = normal(rng) / std::sqrt(static_cast<float>(base.cols));
  for (float& v : b) v = 0.02f * normal(rng);
  Layer fused = base;
  for (size_t r = 0; r < base.rows; ++r)
    for (size_t c = 0; c < base.cols; ++c) {
      delta[r * base.cols + c] = b[r * 2] * a[c] + b[r * 2 + 1] * a[base.cols + c];
      fused.w[r * base.cols + c] += delta[r * base.cols + c];
    }
  const std::vector<double> along = gram(delta, base.rows, base.cols);  // inputs x = rows of ΔW
  std::vector<double> weighted = fused.h;
  add_delta_weighting(weighted, along, base.cols, 1.0);
  const auto plain = gptq_dequantized(fused, fused.h, 3, 64, {});
  const auto aimed = gptq_dequantized(fused, weighted, 3, 64, {});
  const auto nearest = rtn_dequantized(fused, 3, 64);
  const size_t rows = base.rows, cols = base.cols;
  EXPECT_LT(weighted_error(fused.w, aimed, along, rows, cols), 0.8 * weighted_error(fused.w, plain, along, rows, cols));
  EXPECT_LT(weighted_error(fused.w, aimed, fused.h, rows, cols), 2 * weighted_error(fused.w, plain, fused.h, rows, cols));
  EXPECT_LT(weighted_error(fused.w, aimed, fused.h, rows, cols), weighted_error(fused.w, nearest, fused.h, rows, cols));
  std::vector<double> unchanged = fused.h;
  add_delta_weighting(unchanged, gram(std::vector<float>(delta.size(), 0.0f), rows, cols), cols, 1.0);
  EXPECT_EQ(unchanged, fused.h);
}

}  // namespace
}  // namespace quantlab::quant
