// affine_quantize must reproduce kernels::quantize_row_reference (MLX's CPU rule) bit for bit: codes,
// packed words, scales and biases, for every bit width, group size and compiled target, including the
// edge cases of the spec (all-zero and constant groups, all-negative groups, exact .5 ties).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/kernels_test_util.h"
#include "kernels/affine_reference.h"

namespace quantlab::kernels {
namespace {

using testing::for_each_target;

void expect_matches_reference(const std::vector<float>& w, size_t rows, size_t cols, int bits, int group) {
  const size_t words = rows * cols * bits / 32, groups = rows * cols / group;
  std::vector<uint32_t> ref_packed(words), packed(words);
  std::vector<float> ref_scales(groups), ref_biases(groups), scales(groups), biases(groups);
  for (size_t r = 0; r < rows; ++r) {
    kernels::quantize_row_reference(w.data() + r * cols, cols, bits, group, ref_packed.data() + r * cols * bits / 32,
                                  ref_scales.data() + r * cols / group, ref_biases.data() + r * cols / group);
  }
  testing::OddBuffer input(w, 4);  // float-aligned, not vector-aligned
  affine_quantize(input.floats(), rows, cols, bits, group, packed.data(), scales.data(), biases.data());
  ASSERT_EQ(0, std::memcmp(ref_packed.data(), packed.data(), words * 4)) << "packed codes differ";
  ASSERT_EQ(0, std::memcmp(ref_scales.data(), scales.data(), groups * 4)) << "scales differ";
  ASSERT_EQ(0, std::memcmp(ref_biases.data(), biases.data(), groups * 4)) << "biases differ";
}

// A tiny w with w / 1e-7f == 0.49999997f (the largest float below 0.5). In a group {w, -w, ...} the
// step is floored at 1e-7, the anchor is w (ties pick the max), q0 = rint(-0.49999997) = 0, so
// scale = -1e-7, bias = 0 and every -w has the quotient 0.49999997f.
float just_below_half_step() {
  const float target = std::nextafter(0.5f, 0.0f);
  float w = target * 1e-7f;
  for (int i = 0; i < 64 && w / 1e-7f != target; ++i) {
    w = std::nextafter(w, w / 1e-7f < target ? 1.0f : 0.0f);
  }
  EXPECT_EQ(w / 1e-7f, target);
  return w;
}

class AffineQuantizeTest : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(AffineQuantizeTest, RandomRowsMatchReferenceBitForBit) {
  const int bits = std::get<0>(GetParam()), group = std::get<1>(GetParam());  // lambdas capture these
  std::mt19937 rng(bits * 100 + group);
  const size_t rows = 6, cols = 4 * 128;
  std::vector<float> w = testing::random_floats(rng, rows * cols, -1.0f, 1.0f);
  // Mixed magnitudes and signs per group: scale groups by powers of ten, shift some all-positive.
  for (size_t i = 0; i < w.size(); ++i) {
    const size_t g = i / group;
    w[i] = w[i] * std::pow(10.0f, static_cast<float>(g % 7) - 4.0f) + (g % 3 == 0 ? 2.0f : 0.0f);
  }
  for_each_target([&] { expect_matches_reference(w, rows, cols, bits, group); });
}

TEST_P(AffineQuantizeTest, EdgeCaseGroupsMatchReference) {
  const int bits = std::get<0>(GetParam()), group = std::get<1>(GetParam());  // lambdas capture these
  const size_t g = static_cast<size_t>(group);
  std::vector<float> w;
  auto add_group = [&](auto value_of) {
    for (size_t i = 0; i < g; ++i) w.push_back(value_of(i));
  };
  add_group([](size_t) { return 0.0f; });                                         // all zero
  add_group([](size_t) { return 0.3f; });                                         // constant
  add_group([](size_t) { return -1.7f; });                                        // constant negative
  add_group([](size_t i) { return -0.9f + 0.1f * static_cast<float>(i % 8); });   // all negative
  add_group([](size_t i) { return static_cast<float>(i % 16) - 7.5f; });          // halves: ties
  add_group([](size_t i) { return i % 2 ? 1.0f : -1.0f; });                       // |lo| == |hi|
  add_group([](size_t i) { return i == 5 ? 1e-8f : 0.0f; });                      // near-zero range
  add_group([](size_t i) { return i % 3 ? -0.0f : 0.0f; });                       // signed zeros
  add_group([](size_t i) { return 1e4f * static_cast<float>(i) - 3e5f; });        // large values
  // A code whose quotient is 0.49999997f: correct rounding gives 0; a naive "add 0.5 and truncate"
  // gives 1 (the sum rounds up to 1.0f).
  const float tiny = just_below_half_step();
  add_group([tiny](size_t i) { return i % 2 ? -tiny : tiny; });
  for_each_target([&] { expect_matches_reference(w, 1, w.size(), bits, group); });
}

INSTANTIATE_TEST_SUITE_P(AllWidthsAndGroups, AffineQuantizeTest,
                         ::testing::Combine(::testing::Values(2, 3, 4, 5, 6, 7, 8),
                                            ::testing::Values(32, 64, 128)));

// pack_codes (the vector packer affine_quantize uses, exported for GPTQ's codes) writes the reference's
// words for every width and for lengths that end inside a vector, at every target; nothing past them.
TEST(PackCodesTest, MatchesReferenceForEveryWidthAndLength) {
  std::mt19937 rng(11);
  for (int bits = 2; bits <= 8; ++bits) {
    for (size_t n : {size_t{32}, size_t{96}, size_t{160}, size_t{2048}}) {
      std::vector<uint8_t> codes(n);
      for (auto& c : codes) c = static_cast<uint8_t>(rng() & kernels::max_code(bits));
      std::vector<uint32_t> expected(n * bits / 32);
      pack_codes_reference(codes.data(), n, bits, expected.data());
      for_each_target([&] {
        std::vector<uint32_t> got(n * bits / 32 + 4, 0xDEADBEEFu);
        pack_codes(codes.data(), n, bits, got.data());
        ASSERT_TRUE(std::equal(expected.begin(), expected.end(), got.begin())) << bits << " bits, " << n << " codes";
        for (size_t i = expected.size(); i < got.size(); ++i) ASSERT_EQ(got[i], 0xDEADBEEFu) << "wrote past the end";
      });
    }
  }
}

// The worked example of docs/mlx-format.md §1.6 scaled up to a 32-element group: the first 8 values
// are the example's, the rest repeat the anchor (0.95), which leaves min/max unchanged.
TEST(AffineQuantizeTest, WorkedExampleFromSpec) {
  std::vector<float> w = {-0.53f, -0.21f, 0.00f, 0.08f, 0.27f, 0.44f, 0.71f, 0.95f};
  w.resize(32, 0.95f);
  for_each_target([&] {
    std::vector<uint32_t> packed(4);
    float scale = 0, bias = 0;
    affine_quantize(w.data(), 1, 32, 4, 32, packed.data(), &scale, &bias);
    EXPECT_EQ(packed[0], 0x03579ACFu);
    EXPECT_EQ(scale, 0.95f / -10.0f);
    EXPECT_EQ(bias, 0.95f);
  });
}

// affine_rounding_error (sensitivity's inner loop) against the long way: the reference quantizer, the
// parameters rounded to the storage dtype, dequantized, and the weighted sums in double.
TEST(AffineRoundingErrorTest, MatchesQuantizeDequantizeTheLongWay) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::uniform_real_distribution<float> weight(0.0f, 3.0f);
  const size_t cols = 256;
  std::vector<float> w(cols), m(cols), d(cols);
  for (size_t j = 0; j < cols; ++j) w[j] = normal(rng), m[j] = weight(rng), d[j] = 0.1f * normal(rng);
  for (int bits : {2, 3, 4, 6, 8})
    for (int group : {32, 64, 128})
      for (DType dtype : {DType::kF16, DType::kBF16, DType::kF32}) {
        std::vector<uint32_t> packed(cols * bits / 32);
        std::vector<float> scales(cols / group), biases(cols / group);
        quantize_row_reference(w.data(), cols, bits, group, packed.data(), scales.data(), biases.data());
        double err = 0, along = 0;
        for (size_t j = 0; j < cols; ++j) {
          const size_t g = j / group;
          const uint32_t q = static_cast<uint32_t>((uint64_t{packed[j * bits / 32]} | uint64_t{j * bits % 32 + bits > 32 ? packed[j * bits / 32 + 1] : 0u} << 32) >> (j * bits % 32)) & ((1u << bits) - 1);
          const float deq = static_cast<float>(q) * testing::round_to(dtype, scales[g]) + testing::round_to(dtype, biases[g]);
          const double e = double(w[j]) - deq;
          err += m[j] * e * e;
          along += m[j] * e * d[j];
        }
        for_each_target([&] {
          double got_err = 0, got_along = 0;
          affine_rounding_error(w.data(), m.data(), d.data(), cols, bits, group, dtype, &got_err, &got_along);
          EXPECT_NEAR(got_err, err, 1e-4 * err) << bits << "/" << group;
          EXPECT_NEAR(got_along, along, 1e-4 * std::abs(err) + 1e-12) << bits << "/" << group;
          affine_rounding_error(w.data(), m.data(), nullptr, cols, bits, group, dtype, &got_err, &got_along);
          EXPECT_EQ(got_along, 0.0);
        });
      }
}

TEST(AffineQuantizeTest, RejectsUnsupportedShapes) {
  std::vector<float> w(96);
  std::vector<uint32_t> packed(96);
  std::vector<float> s(3), b(3);
  EXPECT_THROW(affine_quantize(w.data(), 1, 96, 9, 32, packed.data(), s.data(), b.data()), Error);
  EXPECT_THROW(affine_quantize(w.data(), 1, 96, 4, 48, packed.data(), s.data(), b.data()), Error);
  EXPECT_THROW(affine_quantize(w.data(), 1, 96, 4, 64, packed.data(), s.data(), b.data()), Error);
}

}  // namespace
}  // namespace quantlab::kernels
