// matmul against the double reference on every compiled target: all bit widths x group sizes x scale
// dtypes, n = 1, 3 (one matvec per token), 17, 65, 130 (partial token vectors, one panel, and several
// panels split evenly: 65 tokens are 3 + 2 vectors with 16 lanes, 130 are 3 + 3 + 3), row counts that
// leave partial weight blocks and tiles, float weight formats with ragged K, and thread-count
// independence. The other tests use n = 22, above the matvec cut-off (3/4 of the lanes: 12 with AVX-512).
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <thread>
#include <tuple>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/kernels_test_util.h"

namespace quantlab::kernels {
namespace {

using testing::AffineMatrix;
using testing::for_each_target;

constexpr DType kScaleTypes[] = {DType::kF16, DType::kBF16, DType::kF32};
constexpr size_t kBatchSizes[] = {1, 3, 17, 65, 130};
constexpr size_t kMostTokens = 130;

class AffineMatmulTest : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(AffineMatmulTest, MatchesDoubleReferenceWithinBound) {
  const auto [bits, group] = GetParam();
  ThreadPool pool(2);
  for (DType scale_type : kScaleTypes) {
    SCOPED_TRACE(dtype_name(scale_type));
    std::mt19937 rng(bits * 31 + group);
    const size_t rows = 70, cols = group == 128 ? 384 : 320;  // 70: partial weight-row block and tile
    const AffineMatrix m = testing::quantized_random(rng, rows, cols, bits, group, scale_type);
    const std::vector<float> x = testing::random_floats(rng, kMostTokens * cols, -2.0f, 2.0f);
    std::vector<testing::ReferenceProduct> ref;
    for (size_t i = 0; i < kMostTokens; ++i) ref.push_back(testing::reference_affine_matvec(m, x.data() + i * cols));
    for_each_target([&] {
      for (size_t n : kBatchSizes) {
        std::vector<float> y(n * rows);
        matmul(m.view(), x.data(), n, y.data(), pool);
        for (size_t i = 0; i < n; ++i)
          ASSERT_TRUE(testing::near_reference(y.data() + i * rows, ref[i], cols)) << "n " << n << " activation " << i;
      }
    });
  }
}

// Rows longer than one K chunk (MultiplyTile walks K in chunks of 1024 with parked accumulators): the
// products still match the reference, exactly on exactly representable data.
TEST(MatmulTest, LongRowsWalkedInChunksOfK) {
  ThreadPool pool(2);
  for (int bits : {3, 4, 8}) {
    SCOPED_TRACE(bits);
    std::mt19937 rng(bits);
    const size_t rows = 21, cols = 2560, n = 22;  // K chunks 1024 + 1024 + 512
    const AffineMatrix m = testing::quantized_random(rng, rows, cols, bits, 64, DType::kBF16);
    const std::vector<float> x = testing::random_floats(rng, n * cols, -2.0f, 2.0f);
    const AffineMatrix exact = testing::exact_random(rng, rows, cols, bits, 64, DType::kBF16);
    const std::vector<float> xi = testing::small_integers(rng, n * cols);
    for_each_target([&] {
      std::vector<float> y(n * rows), ye(n * rows);
      matmul(m.view(), x.data(), n, y.data(), pool);
      matmul(exact.view(), xi.data(), n, ye.data(), pool);
      for (size_t i = 0; i < n; ++i) {
        const auto ref = testing::reference_affine_matvec(m, x.data() + i * cols);
        const auto ref_exact = testing::reference_affine_matvec(exact, xi.data() + i * cols);
        ASSERT_TRUE(testing::near_reference(y.data() + i * rows, ref, cols)) << "activation " << i;
        for (size_t r = 0; r < rows; ++r) ASSERT_EQ(ye[i * rows + r], ref_exact.value[r]) << i << "," << r;
      }
    });
  }
}

TEST_P(AffineMatmulTest, ExactOnExactlyRepresentableData) {
  const auto [bits, group] = GetParam();
  ThreadPool pool(1);
  std::mt19937 rng(bits * 5 + group);
  const size_t rows = 13, cols = 2 * 128, n = 22;
  const AffineMatrix m = testing::exact_random(rng, rows, cols, bits, group, DType::kBF16);
  const std::vector<float> x = testing::small_integers(rng, n * cols);
  for_each_target([&] {
    std::vector<float> y(n * rows);
    matmul(m.view(), x.data(), n, y.data(), pool);
    for (size_t i = 0; i < n; ++i) {
      const auto ref = testing::reference_affine_matvec(m, x.data() + i * cols);
      for (size_t r = 0; r < rows; ++r) ASSERT_EQ(y[i * rows + r], ref.value[r]) << i << "," << r;
    }
  });
}

INSTANTIATE_TEST_SUITE_P(AllWidthsAndGroups, AffineMatmulTest,
                         ::testing::Combine(::testing::Values(2, 3, 4, 5, 6, 7, 8),
                                            ::testing::Values(32, 64, 128)));

TEST(MatmulTest, FloatWeightsMatchDoubleReference) {
  ThreadPool pool(2);
  for (DType dtype : kScaleTypes) {
    for (size_t cols : {5, 64, 200}) {
      SCOPED_TRACE(testing::to_string(dtype, cols));
      std::mt19937 rng(cols + 1);
      const size_t rows = 23, n = 22;
      std::vector<float> w = testing::random_floats(rng, rows * cols, -1.0f, 1.0f);
      for (float& f : w) f = testing::round_to(dtype, f);
      const std::vector<float> x = testing::random_floats(rng, n * cols, -1.0f, 1.0f);
      testing::OddBuffer stored(testing::to_storage(dtype, w)), xo(x, 4);
      const MatrixView v = testing::float_view(dtype, rows, cols, stored.get());
      for_each_target([&] {
        std::vector<float> y(n * rows);
        matmul(v, xo.floats(), n, y.data(), pool);
        for (size_t i = 0; i < n; ++i) {
          const auto ref = testing::reference_float_matvec(w, rows, cols, x.data() + i * cols);
          ASSERT_TRUE(testing::near_reference(y.data() + i * rows, ref, cols)) << "activation " << i;
        }
      });
    }
  }
}

TEST(MatmulTest, IndependentOfThreadCountAndAlignment) {
  std::mt19937 rng(11);
  const size_t rows = 301, cols = 256, n = 22;
  for (int bits : {2, 5, 8}) {
    const AffineMatrix m = testing::quantized_random(rng, rows, cols, bits, 32, DType::kF16);
    const std::vector<float> x = testing::random_floats(rng, n * cols, -1.0f, 1.0f);
    for_each_target([&] {
      std::vector<float> y1(n * rows), y2(n * rows), y3(n * rows), y_odd(n * rows);
      ThreadPool p1(1), p2(2), p3(3);
      matmul(m.view(), x.data(), n, y1.data(), p1);
      matmul(m.view(), x.data(), n, y2.data(), p2);
      matmul(m.view(), x.data(), n, y3.data(), p3);
      testing::OddBuffer packed(m.packed), scales(m.scale_bytes), biases(m.bias_bytes), xo(x, 4);
      MatrixView v = m.view();
      v.data = packed.get();
      v.scales = scales.get();
      v.biases = biases.get();
      matmul(v, xo.floats(), n, y_odd.data(), p3);
      EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * 4));
      EXPECT_EQ(0, std::memcmp(y1.data(), y3.data(), y1.size() * 4));
      EXPECT_EQ(0, std::memcmp(y1.data(), y_odd.data(), y1.size() * 4));
    });
  }
}

TEST(MatmulTest, BatchEqualsOneMatmulPerJob) {
  std::mt19937 rng(12);
  const size_t cols = 256;
  // Two 4-bit jobs on the same X share its preparation; a 6-bit job on that X does not; an f32 job
  // lays X out its own way; one job has a single row (matvec); one has no rows; another X has 5 rows.
  const AffineMatrix a = testing::quantized_random(rng, 70, cols, 4, 64, DType::kBF16);
  const AffineMatrix b = testing::quantized_random(rng, 33, cols, 4, 64, DType::kBF16);
  const AffineMatrix c = testing::quantized_random(rng, 41, cols, 6, 32, DType::kF16);
  const std::vector<float> f = testing::random_floats(rng, 19 * cols, -1.0f, 1.0f);
  const MatrixView fv = testing::float_view(DType::kF32, 19, cols, f.data());
  MatrixView empty = b.view();
  empty.rows = 0;
  const std::vector<float> x = testing::random_floats(rng, 17 * cols, -1.0f, 1.0f);
  const std::vector<float> x5 = testing::random_floats(rng, 5 * cols, -1.0f, 1.0f);
  struct Case { MatrixView w; const float* x; size_t n; };
  const Case cases[] = {{a.view(), x.data(), 17}, {b.view(), x.data(), 17}, {c.view(), x.data(), 17},
                        {fv, x.data(), 17},       {b.view(), x5.data(), 1}, {empty, x.data(), 17},
                        {a.view(), x5.data(), 5}};
  for_each_target([&] {
    ThreadPool pool(2);
    std::vector<std::vector<float>> batched, alone;
    std::vector<MatmulJob> jobs;
    for (const Case& k : cases) {
      batched.emplace_back(k.n * k.w.rows + 1, -7.0f);  // +1: nothing is written past Y
      alone.emplace_back(k.n * k.w.rows + 1, -7.0f);
    }
    for (size_t j = 0; j < std::size(cases); ++j) {
      jobs.push_back({cases[j].w, cases[j].x, cases[j].n, batched[j].data()});
      matmul(cases[j].w, cases[j].x, cases[j].n, alone[j].data(), pool);
    }
    matmul_batch(jobs.data(), jobs.size(), pool);
    for (size_t j = 0; j < std::size(cases); ++j) {
      EXPECT_EQ(0, std::memcmp(batched[j].data(), alone[j].data(), batched[j].size() * 4)) << "job " << j;
      EXPECT_EQ(batched[j].back(), -7.0f) << "job " << j;
    }
  });
}

// Two tokens take the matvec kernel, one call per token, on every target (the cut-off is at least 2).
TEST(MatmulTest, FewTokensRunAsOneMatvecPerToken) {
  std::mt19937 rng(14);
  const size_t rows = 37, cols = 320, n = 2;
  const AffineMatrix m = testing::quantized_random(rng, rows, cols, 6, 64, DType::kF16);
  const std::vector<float> x = testing::random_floats(rng, n * cols, -1.0f, 1.0f);
  for_each_target([&] {
    ThreadPool pool(2);
    std::vector<float> y(n * rows), per_token(n * rows);
    matmul(m.view(), x.data(), n, y.data(), pool);
    for (size_t i = 0; i < n; ++i) matvec(m.view(), x.data() + i * cols, per_token.data() + i * rows, pool);
    EXPECT_EQ(0, std::memcmp(y.data(), per_token.data(), y.size() * sizeof(float)));
  });
}

// The workspace the kernels keep between calls is counted while a thread holds it (at least the
// activation panels: n x K floats) and given back when the thread ends.
TEST(MatmulTest, WorkspaceIsCountedWhileHeldAndReleasedWithItsThread) {
  std::mt19937 rng(13);
  const size_t rows = 40, cols = 384, n = 130;
  const AffineMatrix m = testing::quantized_random(rng, rows, cols, 4, 64, DType::kBF16);
  const std::vector<float> x = testing::random_floats(rng, n * cols, -1.0f, 1.0f);
  std::vector<float> y(n * rows);
  const size_t before = matmul_workspace_bytes();
  size_t during = 0;
  std::thread([&] {
    ThreadPool pool(1);  // everything on this thread, so that its end frees it all
    matmul(m.view(), x.data(), n, y.data(), pool);
    during = matmul_workspace_bytes();
  }).join();
  EXPECT_GE(during, before + n * cols * sizeof(float));
  EXPECT_EQ(matmul_workspace_bytes(), before);
}

}  // namespace
}  // namespace quantlab::kernels
