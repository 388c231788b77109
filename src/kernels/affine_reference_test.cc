// Golden tests of the MLX affine reference against the vectors in docs/mlx-format.md (§1.6, §2.3),
// which were derived by hand from MLX's CPU kernel and unpack masks.
#include "kernels/affine_reference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace quantlab::kernels {
namespace {

std::vector<uint32_t> pack(const std::vector<uint8_t>& codes, int bits) {
  std::vector<uint32_t> words(codes.size() * bits / 32);
  pack_codes_reference(codes.data(), codes.size(), bits, words.data());
  return words;
}

// Codes q_i = (i+1) mod 2^bits, 32 of them (a whole number of words for every width).
std::vector<uint8_t> counting_codes(int bits) {
  std::vector<uint8_t> codes(32);
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<uint8_t>((i + 1) % (1u << bits));
  return codes;
}

struct PackVector {
  int bits;
  uint32_t word0, word1;
};

class PackingGolden : public ::testing::TestWithParam<PackVector> {};

TEST_P(PackingGolden, FirstWordsMatchSpec) {
  const auto v = GetParam();
  const auto words = pack(counting_codes(v.bits), v.bits);
  ASSERT_GE(words.size(), 2u);
  EXPECT_EQ(words[0], v.word0) << std::hex << words[0];
  EXPECT_EQ(words[1], v.word1) << std::hex << words[1];
}

INSTANTIATE_TEST_SUITE_P(MlxFormatTable, PackingGolden,
                         ::testing::Values(PackVector{2, 0x39393939u, 0x39393939u},
                                           PackVector{3, 0xD11F58D1u, 0x58D11F58u},
                                           PackVector{4, 0x87654321u, 0x0FEDCBA9u},
                                           PackVector{5, 0xCC520C41u, 0xD62D4941u},
                                           PackVector{6, 0x85103081u, 0xB2892071u},
                                           PackVector{8, 0x04030201u, 0x08070605u}));

TEST(Packing, SevenBitStreamIsLsbFirst) {
  // Independent construction: write the bit string by hand, then compare word by word.
  const auto codes = counting_codes(7);
  std::vector<int> bitstream;
  for (uint8_t c : codes)
    for (int b = 0; b < 7; ++b) bitstream.push_back((c >> b) & 1);
  const auto words = pack(codes, 7);
  ASSERT_EQ(words.size(), 7u);
  for (size_t w = 0; w < words.size(); ++w) {
    uint32_t expected = 0;
    for (int b = 31; b >= 0; --b) expected = (expected << 1) | static_cast<uint32_t>(bitstream[w * 32 + b]);
    EXPECT_EQ(words[w], expected) << "word " << w;
  }
}

TEST(Packing, UnpackInvertsPackForEveryWidth) {
  for (int bits = 2; bits <= 8; ++bits) {
    std::vector<uint8_t> codes(128);
    for (size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<uint8_t>((i * 37 + 11) % (1u << bits));
    const auto words = pack(codes, bits);
    std::vector<uint8_t> back(codes.size());
    unpack_codes_reference(words.data(), codes.size(), bits, back.data());
    EXPECT_EQ(back, codes) << bits << " bits";
  }
}

TEST(QuantizeGroup, WorkedExampleNegativeScale) {
  // mlx-format.md §1.6: the max has the larger magnitude, so scale < 0 and bias = max.
  const std::vector<float> w = {-0.53f, -0.21f, 0.00f, 0.08f, 0.27f, 0.44f, 0.71f, 0.95f};
  std::vector<uint8_t> q(8);
  const auto p = quantize_group_reference(w.data(), w.size(), 4, q.data());
  EXPECT_FLOAT_EQ(p.scale, 0.95f / -10.0f);
  EXPECT_EQ(p.bias, 0.95f);
  EXPECT_EQ(q, (std::vector<uint8_t>{15, 12, 10, 9, 7, 5, 3, 0}));  // -0.53 clipped from 16
  EXPECT_EQ(pack(std::vector<uint8_t>(q.begin(), q.end()), 4)[0], 0x03579ACFu);
}

TEST(QuantizeGroup, MirrorCasePositiveScale) {
  const std::vector<float> w = {-0.95f, -0.71f, -0.44f, -0.27f, -0.08f, 0.00f, 0.21f, 0.53f};
  std::vector<uint8_t> q(8);
  const auto p = quantize_group_reference(w.data(), w.size(), 4, q.data());
  EXPECT_FLOAT_EQ(p.scale, 0.095f);
  EXPECT_EQ(p.bias, -0.95f);
  EXPECT_EQ(q, (std::vector<uint8_t>{0, 3, 5, 7, 9, 10, 12, 15}));
}

TEST(QuantizeGroup, AllNegativeUsesTrueMaxOnCpu) {
  std::vector<float> w;
  for (int i = 0; i < 8; ++i) w.push_back(-0.9f + 0.1f * static_cast<float>(i));
  std::vector<uint8_t> q(8);
  const auto p = quantize_group_reference(w.data(), w.size(), 4, q.data());
  EXPECT_NEAR(p.scale, 0.0473684f, 1e-6f);
  EXPECT_EQ(p.bias, w[0]);
  EXPECT_EQ(q, (std::vector<uint8_t>{0, 2, 4, 6, 8, 11, 13, 15}));
}

TEST(QuantizeGroup, AllZerosGiveZeroBiasAndTinyNegativeScale) {
  std::vector<float> w(32, 0.0f);
  std::vector<uint8_t> q(32, 99);
  const auto p = quantize_group_reference(w.data(), w.size(), 4, q.data());
  EXPECT_EQ(p.scale, -1e-7f);
  EXPECT_EQ(p.bias, 0.0f);
  for (uint8_t c : q) EXPECT_EQ(c, 0);
}

TEST(QuantizeGroup, ConstantGroupReconstructsExactly) {
  std::vector<float> w(32, 0.5f);
  std::vector<uint8_t> q(32, 99);
  const auto p = quantize_group_reference(w.data(), w.size(), 6, q.data());
  EXPECT_EQ(p.bias, 0.5f);
  EXPECT_LT(p.scale, 0.0f);
  EXPECT_NEAR(p.scale, -1e-7f, 1e-12f);
  for (uint8_t c : q) EXPECT_EQ(c, 0);
  EXPECT_EQ(std::fma(0.0f, p.scale, p.bias), 0.5f);
}

TEST(QuantizeGroup, QZeroKeepsSignedStepAndZeroBias) {
  // |edge / s| < 0.5: q0 rounds to 0, so bias stays 0 and scale stays -max(range/n, eps).
  const std::vector<float> w = {-1e-8f, 1e-8f, 0.0f, 5e-9f};
  std::vector<uint8_t> q(4);
  const auto p = quantize_group_reference(w.data(), w.size(), 4, q.data());
  EXPECT_EQ(p.bias, 0.0f);
  EXPECT_EQ(p.scale, -1e-7f);
  for (uint8_t c : q) EXPECT_EQ(c, 0);
}

TEST(QuantizeGroup, ExactTiesRoundHalfToEven) {
  // lo = 0, hi = 15 at 4 bits: scale = -1, bias = 15, so q = rint(15 - w) with exact .5 ties.
  const std::vector<float> w = {0.0f, 15.0f, 0.5f, 1.5f, 2.5f, 3.5f};
  std::vector<uint8_t> q(w.size());
  const auto p = quantize_group_reference(w.data(), w.size(), 4, q.data());
  EXPECT_EQ(p.scale, -1.0f);
  EXPECT_EQ(p.bias, 15.0f);
  EXPECT_EQ(q, (std::vector<uint8_t>{15, 0, 14, 14, 12, 12}));
}

TEST(QuantizeRow, DequantizeIsWithinOneStepAndHalfAStepInside) {
  std::vector<float> w(256);
  uint32_t state = 12345;
  for (auto& v : w) {
    state = state * 1664525u + 1013904223u;
    v = (static_cast<float>(state >> 8) / 16777216.0f - 0.5f) * 0.2f;
  }
  for (int bits = 2; bits <= 8; ++bits) {
    for (int g : {32, 64, 128}) {
      std::vector<uint32_t> packed(w.size() * bits / 32);
      std::vector<float> scales(w.size() / g), biases(w.size() / g), back(w.size());
      quantize_row_reference(w.data(), w.size(), bits, g, packed.data(), scales.data(), biases.data());
      dequantize_row_reference(packed.data(), scales.data(), biases.data(), w.size(), bits, g, back.data());
      std::vector<uint8_t> codes(w.size());
      unpack_codes_reference(packed.data(), w.size(), bits, codes.data());
      for (size_t i = 0; i < w.size(); ++i) {
        const float step = std::abs(scales[i / g]);
        const bool inside = codes[i] != 0 && codes[i] != max_code(bits);
        EXPECT_LE(std::abs(back[i] - w[i]), (inside ? 0.5f : 1.0f) * step * 1.0001f)
            << bits << " bits, group " << g << ", element " << i;
      }
    }
  }
}

}  // namespace
}  // namespace quantlab::kernels
