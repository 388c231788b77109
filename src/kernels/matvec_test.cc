// matvec and dequantize_row against scalar references (quant:: reference unpacking, double sums), on
// every compiled Highway target, for all bit widths x group sizes x scale dtypes and the float formats.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/kernels_test_util.h"

namespace quantlab::kernels {
namespace {

using testing::AffineMatrix;
using testing::for_each_target;

constexpr DType kScaleTypes[] = {DType::kF16, DType::kBF16, DType::kF32};

// Columns that are a whole number of groups but (for most targets/widths) not of code vectors, so the
// padded tail of each row is exercised.
size_t test_cols(int group) { return group == 32 ? 11 * 32 : group == 64 ? 5 * 64 : 3 * 128; }

class AffineMatvecTest : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(AffineMatvecTest, MatchesDoubleReferenceWithinBound) {
  const auto [bits, group] = GetParam();
  ThreadPool pool(2);
  for (DType scale_type : kScaleTypes) {
    SCOPED_TRACE(dtype_name(scale_type));
    std::mt19937 rng(bits * 1000 + group);
    const size_t rows = 37, cols = test_cols(group);
    const AffineMatrix m = testing::quantized_random(rng, rows, cols, bits, group, scale_type);
    const std::vector<float> x = testing::random_floats(rng, cols, -2.0f, 2.0f);
    const auto ref = testing::reference_affine_matvec(m, x.data());
    for_each_target([&] {
      std::vector<float> y(rows);
      matvec(m.view(), x.data(), y.data(), pool);
      ASSERT_TRUE(testing::near_reference(y.data(), ref, cols));
    });
  }
}

TEST_P(AffineMatvecTest, ExactOnExactlyRepresentableData) {
  const auto [bits, group] = GetParam();
  ThreadPool pool(1);
  for (DType scale_type : kScaleTypes) {
    SCOPED_TRACE(dtype_name(scale_type));
    std::mt19937 rng(bits * 7 + group);
    const size_t rows = 9, cols = test_cols(group);
    const AffineMatrix m = testing::exact_random(rng, rows, cols, bits, group, scale_type);
    const std::vector<float> x = testing::small_integers(rng, cols);
    const auto ref = testing::reference_affine_matvec(m, x.data());
    for_each_target([&] {
      std::vector<float> y(rows);
      matvec(m.view(), x.data(), y.data(), pool);
      for (size_t r = 0; r < rows; ++r) ASSERT_EQ(y[r], ref.value[r]) << "row " << r;
    });
  }
}

TEST_P(AffineMatvecTest, DequantizeRowMatchesReferenceExactly) {
  const auto [bits, group] = GetParam();
  std::mt19937 rng(bits + group);
  const size_t rows = 3, cols = test_cols(group);
  const AffineMatrix m = testing::quantized_random(rng, rows, cols, bits, group, DType::kBF16);
  for (size_t r = 0; r < rows; ++r) {
    std::vector<float> expected(cols), got(cols);
    kernels::dequantize_row_reference(m.packed.data() + r * cols * bits / 32, m.scales.data() + r * m.groups(),
                                    m.biases.data() + r * m.groups(), cols, bits, group, expected.data());
    dequantize_row(m.view(), r, got.data());
    ASSERT_EQ(0, std::memcmp(expected.data(), got.data(), cols * sizeof(float))) << "row " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(AllWidthsAndGroups, AffineMatvecTest,
                         ::testing::Combine(::testing::Values(2, 3, 4, 5, 6, 7, 8),
                                            ::testing::Values(32, 64, 128)));

// Same bytes, different thread counts and addresses: identical results.
TEST(MatvecTest, IndependentOfThreadCountAndAlignment) {
  std::mt19937 rng(5);
  for (int bits : {3, 4, 6}) {
    const AffineMatrix m = testing::quantized_random(rng, 517, 256, bits, 64, DType::kBF16);
    const std::vector<float> x = testing::random_floats(rng, 256, -1.0f, 1.0f);
    for_each_target([&] {
      std::vector<float> y1(517), y2(517), y3(517), y_odd(517);
      ThreadPool p1(1), p2(2), p3(3);
      matvec(m.view(), x.data(), y1.data(), p1);
      matvec(m.view(), x.data(), y2.data(), p2);
      matvec(m.view(), x.data(), y3.data(), p3);
      testing::OddBuffer packed(m.packed), scales(m.scale_bytes), biases(m.bias_bytes), xo(x, 4);
      MatrixView v = m.view();
      v.data = packed.get();
      v.scales = scales.get();
      v.biases = biases.get();
      matvec(v, xo.floats(), y_odd.data(), p2);
      EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * 4));
      EXPECT_EQ(0, std::memcmp(y1.data(), y3.data(), y1.size() * 4));
      EXPECT_EQ(0, std::memcmp(y1.data(), y_odd.data(), y1.size() * 4));
    });
  }
}

TEST(MatvecTest, RowSliceSelectsRows) {
  std::mt19937 rng(8);
  const AffineMatrix m = testing::quantized_random(rng, 12, 128, 5, 32, DType::kF16);
  const std::vector<float> x = testing::random_floats(rng, 128, -1.0f, 1.0f);
  ThreadPool pool(1);
  std::vector<float> all(12), part(4);
  matvec(m.view(), x.data(), all.data(), pool);
  matvec(m.view().row_slice(8, 4), x.data(), part.data(), pool);
  EXPECT_EQ(0, std::memcmp(all.data() + 8, part.data(), 4 * sizeof(float)));
}

// Float weight formats, with column counts that leave vector tails, at odd addresses.
TEST(MatvecTest, FloatWeightsMatchDoubleReference) {
  ThreadPool pool(2);
  for (DType dtype : kScaleTypes) {
    for (size_t cols : {1, 7, 64, 333}) {
      SCOPED_TRACE(testing::to_string(dtype, cols));
      std::mt19937 rng(cols);
      const size_t rows = 19;
      std::vector<float> w = testing::random_floats(rng, rows * cols, -1.0f, 1.0f);
      for (float& f : w) f = testing::round_to(dtype, f);
      const std::vector<float> x = testing::random_floats(rng, cols, -1.0f, 1.0f);
      testing::OddBuffer stored(testing::to_storage(dtype, w)), xo(x, 4);
      const MatrixView v = testing::float_view(dtype, rows, cols, stored.get());
      const auto ref = testing::reference_float_matvec(w, rows, cols, x.data());
      for_each_target([&] {
        std::vector<float> y(rows), row(cols);
        matvec(v, xo.floats(), y.data(), pool);
        ASSERT_TRUE(testing::near_reference(y.data(), ref, cols));
        for (size_t r = 0; r < rows; ++r) {
          dequantize_row(v, r, row.data());
          ASSERT_EQ(0, std::memcmp(row.data(), w.data() + r * cols, cols * 4)) << "row " << r;
        }
      });
    }
  }
}

// A batch mixing shared and distinct inputs, widths, float and affine weights gives, for every job,
// the bytes that one matvec per job gives, whatever the thread count (chunks span job boundaries).
TEST(MatvecTest, BatchEqualsOneMatvecPerJob) {
  std::mt19937 rng(11);
  const size_t cols = 256;
  const AffineMatrix q = testing::quantized_random(rng, 301, cols, 4, 64, DType::kF16);  // > 64 quads: split
  const AffineMatrix k = testing::quantized_random(rng, 157, cols, 4, 64, DType::kF16);
  const AffineMatrix six = testing::quantized_random(rng, 9, cols, 6, 32, DType::kBF16);
  const AffineMatrix other = testing::quantized_random(rng, 5, cols, 4, 64, DType::kF16);
  std::vector<float> wf = testing::random_floats(rng, 7 * cols, -1.0f, 1.0f);
  const std::vector<uint8_t> bf16 = testing::to_storage(DType::kBF16, wf);
  const MatrixView fv = testing::float_view(DType::kBF16, 7, cols, bf16.data());
  const std::vector<float> x1 = testing::random_floats(rng, cols, -1.0f, 1.0f);
  const std::vector<float> x2 = testing::random_floats(rng, cols, -1.0f, 1.0f);
  const std::vector<std::pair<MatrixView, const float*>> parts = {
      {q.view(), x1.data()}, {k.view(), x1.data()}, {six.view(), x1.data()}, {other.view(), x2.data()},
      {fv, x2.data()}};
  for_each_target([&] {
    ThreadPool one(1);
    std::vector<std::vector<float>> expected;
    for (const auto& [w, x] : parts) {
      expected.emplace_back(w.rows);
      matvec(w, x, expected.back().data(), one);
    }
    for (size_t threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      std::vector<std::vector<float>> got;
      std::vector<MatvecJob> jobs;
      for (const auto& [w, x] : parts) got.emplace_back(w.rows, -1.0f);
      for (size_t j = 0; j < parts.size(); ++j) jobs.push_back({parts[j].first, parts[j].second, got[j].data()});
      matvec_batch(jobs.data(), jobs.size(), pool);
      for (size_t j = 0; j < parts.size(); ++j) {
        EXPECT_EQ(0, std::memcmp(expected[j].data(), got[j].data(), got[j].size() * 4))
            << "job " << j << ", " << threads << " threads";
      }
    }
  });
}

TEST(MatvecTest, RejectsInvalidViews) {
  std::mt19937 rng(1);
  const AffineMatrix m = testing::quantized_random(rng, 2, 64, 4, 32, DType::kF16);
  ThreadPool pool(1);
  std::vector<float> x(64), y(2);
  MatrixView bad = m.view();
  bad.bits = 9;
  EXPECT_THROW(matvec(bad, x.data(), y.data(), pool), Error);
  bad = m.view();
  bad.group_size = 48;
  EXPECT_THROW(matvec(bad, x.data(), y.data(), pool), Error);
  bad = m.view();
  bad.cols = 80;
  EXPECT_THROW(matvec(bad, x.data(), y.data(), pool), Error);
}

}  // namespace
}  // namespace quantlab::kernels
