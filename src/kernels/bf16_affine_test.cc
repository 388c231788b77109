// The bf16 compute path (bf16_affine.h): activation rounding, the AVX512-BF16 kernel against the scalar
// reference at every width, group size and scale dtype, and matvec/matmul with Compute::kBf16 through
// both the kernel and the fallback, bounded against the exact product.
#include "kernels/bf16_affine.h"

#include <gtest/gtest.h>

#include <bit>
#include <cfloat>
#include <cmath>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

#include "core/half.h"
#include "kernels/compute_paths.h"
#include "kernels/kernels.h"
#include "kernels/kernels_test_util.h"

namespace quantlab::kernels {
namespace {

using testing::AffineMatrix;

constexpr DType kScaleTypes[] = {DType::kF16, DType::kBF16, DType::kF32};

using testing::step_kernel_test_cols;

TEST(Bf16Activations, RoundToNearestEvenAndSumPerGroup) {
  std::mt19937 rng(5);
  std::vector<float> x = testing::random_floats(rng, 192, -3.0f, 3.0f);
  x[3] = 1.0f + 1.0f / 256;           // a tie between 1 and 1 + 2^-7: rounds to the even 1
  x[4] = 1.0f + 3.0f / 256;           // a tie that rounds up to the even 1 + 2^-6
  x[5] = std::bit_cast<float>(0x3F808001u);  // just above the tie: rounds up
  bf16::Activations a;
  bf16::prepare_activations(x.data(), x.size(), 64, a);
  ASSERT_EQ(a.groups(), 3u);
  EXPECT_EQ(bf16_to_f32(a.x[3]), 1.0f);
  EXPECT_EQ(bf16_to_f32(a.x[4]), 1.0f + 1.0f / 64);
  EXPECT_EQ(bf16_to_f32(a.x[5]), 1.0f + 1.0f / 128);
  for (size_t g = 0; g < 3; ++g) {
    float sum = 0.0f;
    for (size_t i = g * 64; i < (g + 1) * 64; ++i) {
      const float r = bf16_to_f32(a.x[i]);
      EXPECT_LE(std::fabs(r - x[i]), std::fabs(x[i]) * std::ldexp(1.0f, -8)) << i;  // half an ulp of 8 bits
      sum += r;
    }
    EXPECT_EQ(a.sum[g], sum);
  }
  for (size_t i = x.size(); i < a.x.size(); ++i) ASSERT_EQ(a.x[i], 0) << "padding " << i;
  for (size_t g = 3; g < a.sum.size(); ++g) ASSERT_EQ(a.sum[g], 0.0f) << "padding " << g;
  const std::vector<float> rounded = bf16::rounded_activations(x.data(), x.size());
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(rounded[i], bf16_to_f32(a.x[i])) << i;
}

// A non-finite activation makes the products non-finite, through the kernel and the fallback.
TEST(Bf16Activations, NonFiniteActivationsPropagate) {
  std::vector<float> x(128, 0.5f);
  std::mt19937 rng(1);
  const AffineMatrix m = testing::quantized_random(rng, 4, 128, 4, 64, DType::kF16);
  MatrixView view = m.view();
  view.compute = Compute::kBf16;
  ThreadPool pool(1);
  std::vector<float> y(4);
  for (const float bad : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
    x[70] = bad;
    for (const bool kernel : {true, false}) {
      bf16::allow_kernel(kernel);
      matvec(view, x.data(), y.data(), pool);
      for (float v : y) EXPECT_FALSE(std::isfinite(v)) << (kernel ? "kernel" : "fallback");
    }
  }
  bf16::allow_kernel(true);
}

TEST(Bf16Activations, ParseComputeAndKernelName) {
  EXPECT_EQ(parse_compute("bf16"), Compute::kBf16);
  EXPECT_STREQ(compute_name(Compute::kBf16), "bf16");
  bf16::allow_kernel(false);
  EXPECT_STREQ(compute_kernel(Compute::kBf16), "exact kernels on bf16-rounded activations");
  EXPECT_FALSE(native_kernel_available(Compute::kBf16));
  bf16::allow_kernel(true);
  if (bf16::kernel_available()) { EXPECT_STREQ(compute_kernel(Compute::kBf16), "AVX512_BF16"); }
}

// Σ of the magnitudes of the terms the kernel adds (codes offset by 128, the bias term
// with −128·s folded in), for its f32 error bound.
double term_magnitude(const AffineMatrix& m, size_t r, const bf16::Activations& a) {
  const std::vector<uint8_t> codes = m.codes();
  const double offset = 128.0;
  double total = 0.0;
  for (size_t g = 0; g < m.groups(); ++g) {
    double dot = 0.0, x_abs = 0.0;
    for (size_t i = g * m.group; i < (g + 1) * m.group; ++i) {
      const double x = std::abs(bf16_to_f32(a.x[i]));
      dot += (codes[r * m.cols + i] + offset) * x;
      x_abs += x;
    }
    const double s = std::abs(m.scales[r * m.groups() + g]), b = std::abs(m.biases[r * m.groups() + g]);
    total += s * dot + (b + offset * s) * x_abs;
  }
  return total;
}

class Bf16KernelTest : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(Bf16KernelTest, KernelMatchesTheReference) {
  if (!bf16::kernel_available()) GTEST_SKIP() << "no AVX512-BF16 (+ VBMI, VNNI) on this CPU";
  const auto [bits, group] = GetParam();
  for (DType scale_type : kScaleTypes) {
    SCOPED_TRACE(dtype_name(scale_type));
    std::mt19937 rng(bits * 100 + group);
    const size_t rows = 11, cols = step_kernel_test_cols(group);
    const AffineMatrix m = testing::quantized_random(rng, rows, cols, bits, group, scale_type);
    const std::vector<float> x = testing::random_floats(rng, cols, -2.0f, 2.0f);
    bf16::Activations a;
    bf16::prepare_activations(x.data(), cols, group, a);
    std::vector<float> y(rows), y_from_5(rows - 5);
    bf16::rows_bf16(m.view(), 0, rows, a, y.data());
    bf16::rows_bf16(m.view(), 5, rows - 5, a, y_from_5.data());
    for (size_t r = 0; r < rows; ++r) {
      const double ref = bf16::reference_row(m.view(), r, a);
      const double bound = (cols / 4.0 + m.groups() + 16) * FLT_EPSILON * term_magnitude(m, r, a);
      EXPECT_NEAR(y[r], ref, bound) << "row " << r;
      if (r >= 5) { EXPECT_EQ(y[r], y_from_5[r - 5]) << "row " << r << " depends on its quad"; }
    }
  }
}

// Through matvec and matmul (the kernel, then the fallback): the bf16 product is the exact product of
// the rounded activations, so it differs from the exact product of x by at most Σ|w_i|·|x_i − x̃_i|
// plus f32 arithmetic, and the result does not depend on the thread count.
TEST_P(Bf16KernelTest, MatvecAndMatmulStayWithinTheActivationRounding) {
  const auto [bits, group] = GetParam();
  std::mt19937 rng(bits * 10 + group);
  const size_t rows = 29, cols = step_kernel_test_cols(group), tokens = 20;
  const AffineMatrix m = testing::quantized_random(rng, rows, cols, bits, group, DType::kF16);
  const std::vector<float> x = testing::random_floats(rng, tokens * cols, -2.0f, 2.0f);
  MatrixView view = m.view();
  view.compute = Compute::kBf16;
  const std::vector<uint8_t> codes = m.codes();
  for (const bool kernel : {true, false}) {
    if (kernel && !bf16::kernel_available()) continue;
    SCOPED_TRACE(kernel ? "kernel" : "fallback");
    bf16::allow_kernel(kernel);
    ThreadPool one(1), two(2);
    std::vector<float> y1(rows), y2(rows), prefill(tokens * rows);
    matvec(view, x.data(), y1.data(), one);
    matvec(view, x.data(), y2.data(), two);
    matmul(view, x.data(), tokens, prefill.data(), two);
    bf16::Activations a;
    for (size_t t = 0; t < tokens; ++t) {
      const float* xt = x.data() + t * cols;
      bf16::prepare_activations(xt, cols, group, a);
      const auto exact = testing::reference_affine_matvec(m, xt);
      for (size_t r = 0; r < rows; ++r) {
        double rounding = 0.0;
        for (size_t c = 0; c < cols; ++c) {
          const size_t g = r * m.groups() + c / group;
          rounding += std::abs(m.scales[g] * codes[r * cols + c] + m.biases[g]) * std::abs(xt[c] - bf16_to_f32(a.x[c]));
        }
        const double arithmetic = (cols / 4.0 + m.groups() + 16) * FLT_EPSILON * term_magnitude(m, r, a);
        const double bound = rounding * 1.001 + arithmetic + testing::sum_error_bound(cols, exact.magnitude[r]) * 4;
        ASSERT_NEAR(prefill[t * rows + r], exact.value[r], bound) << "token " << t << " row " << r;
        if (t == 0) {
          ASSERT_NEAR(y1[r], exact.value[r], bound) << "row " << r;
          ASSERT_EQ(y1[r], y2[r]) << "row " << r << " depends on the thread count";
        }
      }
    }
    bf16::allow_kernel(true);
  }
}

// Activations that bfloat16 holds exactly lose nothing: the bf16 path then equals the exact product up
// to f32 summation (the codes' products are exact in f32).
TEST_P(Bf16KernelTest, Bf16RepresentableActivationsGiveTheExactProduct) {
  const auto [bits, group] = GetParam();
  std::mt19937 rng(bits * 3 + group);
  const size_t rows = 9, cols = step_kernel_test_cols(group);
  const AffineMatrix m = testing::quantized_random(rng, rows, cols, bits, group, DType::kBF16);
  const std::vector<float> x = bf16::rounded_activations(testing::random_floats(rng, cols, -2.0f, 2.0f).data(), cols);
  MatrixView view = m.view();
  view.compute = Compute::kBf16;
  ThreadPool pool(2);
  std::vector<float> y(rows);
  matvec(view, x.data(), y.data(), pool);
  const auto exact = testing::reference_affine_matvec(m, x.data());
  bf16::Activations a;
  bf16::prepare_activations(x.data(), cols, group, a);
  for (size_t r = 0; r < rows; ++r) {
    const double bound = (cols / 4.0 + m.groups() + 16) * FLT_EPSILON * term_magnitude(m, r, a);
    EXPECT_NEAR(y[r], exact.value[r], bound) << "row " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(AllWidths, Bf16KernelTest,
                         ::testing::Combine(::testing::Values(2, 3, 4, 5, 6, 7, 8), ::testing::Values(32, 64, 128)),
                         [](const auto& info) {
                           return "bits" + std::to_string(std::get<0>(info.param)) + "_g" +
                                  std::to_string(std::get<1>(info.param));
                         });

// The same matrix with Compute::kBf16 gives other results than with kExact (the flag reaches the kernel),
// and float matrices ignore it.
TEST(Bf16Kernel, Bf16PathRoundsOnlyAffineProducts) {
  std::mt19937 rng(3);
  const AffineMatrix m = testing::quantized_random(rng, 16, 256, 4, 64, DType::kF16);
  const std::vector<float> x = testing::random_floats(rng, 256, -1.0f, 1.0f);
  ThreadPool pool(2);
  MatrixView exact = m.view(), bf16 = m.view();
  bf16.compute = Compute::kBf16;
  std::vector<float> a(16), b(16);
  matvec(exact, x.data(), a.data(), pool);
  matvec(bf16, x.data(), b.data(), pool);
  size_t differing = 0;
  for (size_t r = 0; r < 16; ++r) differing += a[r] != b[r];
  EXPECT_GT(differing, 0u) << "the bf16 path rounded nothing";
  const std::vector<float> w = testing::random_floats(rng, 16 * 256, -1.0f, 1.0f);
  MatrixView f = testing::float_view(DType::kF32, 16, 256, w.data());
  matvec(f, x.data(), a.data(), pool);
  f.compute = Compute::kBf16;
  matvec(f, x.data(), b.data(), pool);
  EXPECT_EQ(a, b) << "a float matrix took the bf16 path";
}

}  // namespace
}  // namespace quantlab::kernels
