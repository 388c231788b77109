// The int8 compute path (int8_affine.h): activation quantization, the VNNI kernel against the scalar
// reference at every width, group size and scale dtype, and matvec/matmul with Compute::kInt8 through
// both the VNNI kernel and the fallback, bounded against the exact product.
#include "kernels/int8_affine.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "kernels/kernels.h"
#include "kernels/kernels_test_util.h"

namespace quantlab::kernels {
namespace {

using testing::AffineMatrix;

constexpr DType kScaleTypes[] = {DType::kF16, DType::kBF16, DType::kF32};

using testing::step_kernel_test_cols;

TEST(Int8Activations, ScalePerGroupIsMaxOver127AndRoundingIsWithinHalfAStep) {
  std::mt19937 rng(7);
  std::vector<float> x = testing::random_floats(rng, 256, -3.0f, 3.0f);
  std::fill(x.begin() + 64, x.begin() + 128, 0.0f);  // an all-zero group
  int8::Activations a;
  int8::quantize_activations(x.data(), x.size(), 64, a);
  ASSERT_EQ(a.groups(), 4u);
  EXPECT_EQ(a.scale[1], 0.0f);
  for (size_t g = 0; g < 4; ++g) {
    float amax = 0.0f;
    int qmax = 0, qsum = 0;
    for (size_t i = g * 64; i < (g + 1) * 64; ++i) {
      amax = std::max(amax, std::fabs(x[i]));
      qsum += a.q[i];
      qmax = std::max(qmax, std::abs(static_cast<int>(a.q[i])));
      if (a.scale[g] > 0.0f) {
        EXPECT_LE(std::fabs(a.scale[g] * a.q[i] - x[i]), a.scale[g] * 0.5f * (1 + 1e-5f)) << i;
      }
    }
    EXPECT_EQ(a.scale[g], amax / 127.0f);
    EXPECT_EQ(a.sum[g], a.scale[g] * static_cast<float>(qsum)) << "the bias term's sum is of the rounded values";
    EXPECT_EQ(qmax, g == 1 ? 0 : 127);
  }
  for (size_t i = x.size(); i < a.q.size(); ++i) ASSERT_EQ(a.q[i], 0) << "padding " << i;
}

// A non-finite activation makes the products NaN (as on the exact path), without converting NaN to int.
TEST(Int8Activations, NonFiniteGroupsPropagateAsNaN) {
  std::vector<float> x(128, 0.5f);
  x[70] = std::numeric_limits<float>::infinity();
  int8::Activations a;
  int8::quantize_activations(x.data(), x.size(), 64, a);
  EXPECT_EQ(a.scale[0], 0.5f / 127.0f);
  EXPECT_TRUE(std::isnan(a.scale[1]));
  EXPECT_TRUE(std::isnan(a.sum[1]));
  for (size_t i = 64; i < 128; ++i) ASSERT_EQ(a.q[i], 0) << i;
  std::mt19937 rng(1);
  const AffineMatrix m = testing::quantized_random(rng, 4, 128, 4, 64, DType::kF16);
  MatrixView view = m.view();
  view.compute = Compute::kInt8;
  ThreadPool pool(1);
  std::vector<float> y(4);
  for (const bool vnni : {true, false}) {
    int8::allow_vnni(vnni);
    matvec(view, x.data(), y.data(), pool);
    for (float v : y) EXPECT_FALSE(std::isfinite(v)) << (vnni ? "vnni" : "fallback");
  }
  int8::allow_vnni(true);
}

TEST(Int8Activations, ParseComputeNamesTheChoices) {
  EXPECT_EQ(parse_compute("exact"), Compute::kExact);
  EXPECT_EQ(parse_compute("int8"), Compute::kInt8);
  EXPECT_STREQ(compute_name(Compute::kInt8), "int8");
  try {
    parse_compute("fp8");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find("exact, int8 or bf16"), std::string::npos) << e.what();
  }
}

// Σ of the magnitudes of the terms the kernel adds, for its f32 error bound.
double term_magnitude(const AffineMatrix& m, size_t r, const int8::Activations& a) {
  const std::vector<uint8_t> codes = m.codes();
  double total = 0.0;
  for (size_t g = 0; g < m.groups(); ++g) {
    double dot = 0.0;
    for (size_t i = g * m.group; i < (g + 1) * m.group; ++i) dot += std::abs(double(codes[r * m.cols + i]) * a.q[i]);
    total += std::abs(m.scales[r * m.groups() + g]) * a.scale[g] * dot + std::abs(m.biases[r * m.groups() + g] * a.sum[g]);
  }
  return total;
}

class Int8KernelTest : public ::testing::TestWithParam<std::tuple<int, int>> {};

// A random quantized matrix of this test's width and group and `tokens` activation rows in [-2, 2].
struct RandomCase {
  AffineMatrix m;
  std::vector<float> x;
};

RandomCase random_case(int bits, int group, DType scale_type, unsigned seed, size_t rows, size_t tokens) {
  std::mt19937 rng(seed);
  const size_t cols = step_kernel_test_cols(group);
  RandomCase c{testing::quantized_random(rng, rows, cols, bits, group, scale_type), {}};
  c.x = testing::random_floats(rng, tokens * cols, -2.0f, 2.0f);
  return c;
}

TEST_P(Int8KernelTest, VnniKernelMatchesTheIntegerReference) {
  if (!int8::vnni_available()) GTEST_SKIP() << "no AVX-512 VNNI + VBMI on this CPU";
  const auto [bits, group] = GetParam();
  for (DType scale_type : kScaleTypes) {
    SCOPED_TRACE(dtype_name(scale_type));
    const size_t rows = 11, cols = step_kernel_test_cols(group);
    const auto [m, x] = random_case(bits, group, scale_type, bits * 100 + group, rows, 1);
    int8::Activations a;
    int8::quantize_activations(x.data(), cols, group, a);
    std::vector<float> y(rows), y_from_5(rows - 5);
    int8::rows_vnni(m.view(), 0, rows, a, y.data());
    int8::rows_vnni(m.view(), 5, rows - 5, a, y_from_5.data());
    for (size_t r = 0; r < rows; ++r) {
      const double ref = int8::reference_row(m.view(), r, a);
      const double bound = (cols / 4.0 + m.groups() + 16) * FLT_EPSILON * term_magnitude(m, r, a);
      EXPECT_NEAR(y[r], ref, bound) << "row " << r;
      if (r >= 5) { EXPECT_EQ(y[r], y_from_5[r - 5]) << "row " << r << " depends on its quad"; }
    }
  }
}

// Through matvec (VNNI kernel, then the fallback): the int8 product is the exact product of the
// rounded activations, so it differs from the exact product of x by at most Σ|w_i|·dx_g/2, and the
// result does not depend on the thread count.
TEST_P(Int8KernelTest, MatvecAndMatmulStayWithinTheActivationRounding) {
  const auto [bits, group] = GetParam();
  std::mt19937 rng(bits * 10 + group);
  const size_t rows = 29, cols = step_kernel_test_cols(group), tokens = 20;
  const AffineMatrix m = testing::quantized_random(rng, rows, cols, bits, group, DType::kF16);
  const std::vector<float> x = testing::random_floats(rng, tokens * cols, -2.0f, 2.0f);
  MatrixView view = m.view();
  view.compute = Compute::kInt8;
  const std::vector<uint8_t> codes = m.codes();
  for (const bool vnni : {true, false}) {
    if (vnni && !int8::vnni_available()) continue;
    SCOPED_TRACE(vnni ? "vnni" : "fallback");
    int8::allow_vnni(vnni);
    ThreadPool one(1), two(2);
    std::vector<float> y1(rows), y2(rows), prefill(tokens * rows);
    matvec(view, x.data(), y1.data(), one);
    matvec(view, x.data(), y2.data(), two);
    matmul(view, x.data(), tokens, prefill.data(), two);
    int8::Activations a;
    for (size_t t = 0; t < tokens; ++t) {
      int8::quantize_activations(x.data() + t * cols, cols, group, a);
      const auto exact = testing::reference_affine_matvec(m, x.data() + t * cols);
      for (size_t r = 0; r < rows; ++r) {
        double rounding = 0.0;
        for (size_t c = 0; c < cols; ++c) {
          const size_t g = r * m.groups() + c / group;
          rounding += std::abs(m.scales[g] * codes[r * cols + c] + m.biases[g]) * a.scale[c / group] * 0.5;
        }
        const double bound = rounding * 1.001 + testing::sum_error_bound(cols, exact.magnitude[r]) * 4;
        ASSERT_NEAR(prefill[t * rows + r], exact.value[r], bound) << "token " << t << " row " << r;
        if (t == 0) {
          ASSERT_NEAR(y1[r], exact.value[r], bound) << "row " << r;
          ASSERT_EQ(y1[r], y2[r]) << "row " << r << " depends on the thread count";
        }
      }
    }
    int8::allow_vnni(true);
  }
}

// The VNNI prefill kernel runs each output through the decode kernel's operations in the same order, so
// a token's logits do not depend on whether it was prefilled or decoded; odd row and token counts
// exercise the partial quads.
TEST_P(Int8KernelTest, VnniPrefillEqualsDecodeBitForBit) {
  if (!int8::vnni_available()) GTEST_SKIP() << "no AVX-512 VNNI + VBMI on this CPU";
  const auto [bits, group] = GetParam();
  for (DType scale_type : kScaleTypes) {
    SCOPED_TRACE(dtype_name(scale_type));
    const size_t rows = 23, cols = step_kernel_test_cols(group), tokens = 19;
    const auto [m, x] = random_case(bits, group, scale_type, bits * 7 + group, rows, tokens);
    MatrixView view = m.view();
    view.compute = Compute::kInt8;
    ThreadPool pool(2);
    std::vector<float> prefill(tokens * rows), decode(rows);
    matmul(view, x.data(), tokens, prefill.data(), pool);
    for (size_t t = 0; t < tokens; ++t) {
      matvec(view, x.data() + t * cols, decode.data(), pool);
      for (size_t r = 0; r < rows; ++r) ASSERT_EQ(prefill[t * rows + r], decode[r]) << "token " << t << " row " << r;
    }
  }
}

// The same matrix with Compute::kInt8 gives other results than with kExact (the flag reaches the kernel).
TEST(Int8Kernel, Int8PathRoundsTheActivations) {
  std::mt19937 rng(3);
  const AffineMatrix m = testing::quantized_random(rng, 16, 256, 4, 64, DType::kF16);
  const std::vector<float> x = testing::random_floats(rng, 256, -1.0f, 1.0f);
  ThreadPool pool(2);
  MatrixView exact = m.view(), int8 = m.view();
  int8.compute = Compute::kInt8;
  std::vector<float> a(16), b(16);
  matvec(exact, x.data(), a.data(), pool);
  matvec(int8, x.data(), b.data(), pool);
  size_t differing = 0;
  for (size_t r = 0; r < 16; ++r) differing += a[r] != b[r];
  EXPECT_GT(differing, 0u) << "the int8 path rounded nothing";
}

INSTANTIATE_TEST_SUITE_P(AllWidths, Int8KernelTest,
                         ::testing::Combine(::testing::Values(2, 3, 4, 5, 6, 7, 8), ::testing::Values(32, 64, 128)),
                         [](const auto& info) {
                           return "bits" + std::to_string(std::get<0>(info.param)) + "_g" +
                                  std::to_string(std::get<1>(info.param));
                         });

}  // namespace
}  // namespace quantlab::kernels
