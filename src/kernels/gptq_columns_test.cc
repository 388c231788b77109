#include "kernels/gptq_columns.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace quantlab::kernels {
namespace {

// A block as GPTQ hands it over: values around the group's range, an upper-triangular U with a
// positive diagonal, some rows whose group is flat (scale 0), 37 rows (vector lanes and a tail).
struct Block {
  size_t rows = 37, width = 128;
  std::vector<float> x, u, scales, biases;
};

Block make_block(uint32_t seed) {
  Block b;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  b.x.resize(b.width * b.rows);
  for (float& v : b.x) v = 0.1f * normal(rng);
  b.u.assign(b.width * b.width, 0.0f);
  for (size_t k = 0; k < b.width; ++k) {
    b.u[k * b.width + k] = 0.5f + std::abs(normal(rng));
    for (size_t m = k + 1; m < b.width; ++m) b.u[k * b.width + m] = 0.05f * normal(rng);
  }
  b.scales.resize(b.x.size());
  b.biases.resize(b.x.size());
  for (size_t i = 0; i < b.x.size(); ++i) {
    const size_t row = i % b.rows;
    b.scales[i] = row == 5 ? 0.0f : 0.02f + 0.001f * static_cast<float>(row);
    b.biases[i] = -0.25f;
  }
  return b;
}

TEST(GptqColumns, VectorKernelIsTheScalarReference) {
  for (int bits : {2, 4, 8}) {
    Block a = make_block(static_cast<uint32_t>(bits)), b = a;
    std::vector<uint8_t> codes_a(a.x.size()), codes_b(a.x.size());
    std::vector<float> errors_a(a.x.size()), errors_b(a.x.size());
    const int max_code = (1 << bits) - 1;
    // Two calls, as GPTQ splits a block at a group's first column.
    for (auto [first, last] : {std::pair<size_t, size_t>{0, 64}, {64, 128}}) {
      gptq_round_columns(a.x.data(), a.rows, a.width, first, last, a.u.data(), a.width, a.scales.data(),
                         a.biases.data(), a.rows, max_code, codes_a.data(), errors_a.data());
      gptq_round_columns_reference(b.x.data(), b.rows, b.width, first, last, b.u.data(), b.width, b.scales.data(),
                                   b.biases.data(), b.rows, max_code, codes_b.data(), errors_b.data());
    }
    size_t same = 0;
    for (size_t i = 0; i < codes_a.size(); ++i) same += codes_a[i] == codes_b[i];
    // A multiply-add fused on one side and not the other moves a value by an ulp: a code may tip only
    // where the value sits on a rounding midpoint.
    EXPECT_GT(static_cast<double>(same) / codes_a.size(), 0.995) << bits << "-bit";
    for (size_t i = 0; i < codes_a.size(); ++i) {
      ASSERT_LE(codes_a[i], max_code);
      if (i % a.rows == 5) {
        ASSERT_EQ(codes_a[i], 0) << "a flat group's code";
      }
      if (codes_a[i] == codes_b[i]) {
        ASSERT_NEAR(errors_a[i], errors_b[i], 1e-3f) << i;
      }
    }
  }
}

TEST(GptqColumns, RoundsToTheNearestCodeAndCarriesTheError) {
  // One column, identity U: the code is the nearest one (ties to even, as MLX rounds), the error is
  // the rounding error, and no other column moves.
  const size_t rows = 3, width = 2;
  std::vector<float> x = {0.25f, 0.5f, 0.76f, 7.0f, 7.0f, 7.0f};  // column 0 then column 1
  const std::vector<float> u = {1.0f, 0.0f, 0.0f, 1.0f};
  const std::vector<float> scales(rows, 0.5f), biases(rows, 0.0f);  // one group for both columns
  std::vector<uint8_t> codes(6);
  std::vector<float> errors(6);
  gptq_round_columns(x.data(), rows, width, 0, 1, u.data(), width, scales.data(), biases.data(), 0, 3, codes.data(),
                     errors.data());
  EXPECT_EQ(codes[0], 0);  // 0.5 → 0 (tie to even)
  EXPECT_EQ(codes[1], 1);
  EXPECT_EQ(codes[2], 2);  // 1.52 → 2
  EXPECT_FLOAT_EQ(errors[0], 0.25f);
  EXPECT_FLOAT_EQ(errors[2], 0.76f - 1.0f);
  EXPECT_EQ(x[3], 7.0f);
}

}  // namespace
}  // namespace quantlab::kernels
