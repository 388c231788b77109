// Element-wise kernels against straightforward double-precision references on every compiled target,
// with lengths that leave vector tails; stored tensors at odd byte addresses, activations at
// float-aligned but not vector-aligned addresses.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.h"
#include "kernels/highway_config.h"  // before any hwy header
#include <hwy/detect_targets.h>
#include "kernels/kernels.h"
#include "kernels/kernels_test_util.h"
#include "kernels/targets.h"

namespace quantlab::kernels {
namespace {

using testing::for_each_target;
using testing::OddBuffer;
using testing::random_floats;

constexpr size_t kLengths[] = {1, 3, 17, 64, 100, 1000};
constexpr double kU = FLT_EPSILON / 2;  // unit roundoff of f32

// Which targets the other tests run each kernel on, on this CPU: printed for the Arm run's log
// (scripts/test-arm64.sh) and CI, checked to include the portable fallback and the baseline SIMD.
TEST(Targets, EveryCompiledTargetThisCpuSupportsRuns) {
  std::string names;
  bool fallback = false, baseline_simd = false;
  for (int64_t target : compiled_targets()) {
    names += std::string(names.empty() ? "" : " ") + target_name(target);
    fallback = fallback || target == HWY_SCALAR || target == HWY_EMU128;
    baseline_simd = baseline_simd || target == HWY_NEON || target == HWY_SSE4 || target == HWY_AVX2 || target == HWY_AVX3;
  }
  std::printf("highway targets: %s (active: %s)\n", names.c_str(), active_target());
  EXPECT_TRUE(fallback) << names;
  EXPECT_TRUE(baseline_simd) << names;
}

TEST(ConvertTest, EveryHalfAndBfloatBitPatternIsExact) {
  std::vector<uint16_t> all(65536);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  OddBuffer src(all);
  for_each_target([&] {
    std::vector<float> f16(all.size()), bf16(all.size());
    convert_to_f32(DType::kF16, src.get(), all.size(), f16.data());
    convert_to_f32(DType::kBF16, src.get(), all.size(), bf16.data());
    for (size_t i = 0; i < all.size(); ++i) {
      const float e16 = f16_to_f32(all[i]), eb = bf16_to_f32(all[i]);
      if (std::isnan(e16)) {
        ASSERT_TRUE(std::isnan(f16[i])) << std::hex << i;
      } else {
        ASSERT_EQ(std::memcmp(&e16, &f16[i], 4), 0) << std::hex << i;
      }
      ASSERT_EQ(std::memcmp(&eb, &bf16[i], 4), 0) << std::hex << i;
    }
  });
}

TEST(ConvertTest, F32IsCopied) {
  std::mt19937 rng(1);
  const std::vector<float> v = random_floats(rng, 37, -5, 5);
  OddBuffer src(v);
  for_each_target([&] {
    std::vector<float> out(v.size());
    convert_to_f32(DType::kF32, src.get(), v.size(), out.data());
    EXPECT_EQ(out, v);
  });
  float dummy = 0;
  EXPECT_THROW(convert_to_f32(DType::kU32, &dummy, 1, &dummy), Error);
}

TEST(DotAxpyTest, MatchDoubleReference) {
  for (size_t n : kLengths) {
    std::mt19937 rng(n);
    const std::vector<float> a = random_floats(rng, n, -1, 1), b = random_floats(rng, n, -1, 1);
    double ref = 0, mag = 0;
    for (size_t i = 0; i < n; ++i) ref += double(a[i]) * b[i], mag += std::abs(double(a[i]) * b[i]);
    OddBuffer ao(a, 4), bo(b, 4);
    for_each_target([&] {
      EXPECT_NEAR(dot(ao.floats(), bo.floats(), n), ref, testing::sum_error_bound(n, mag)) << n;
      OddBuffer y(b, 4);
      axpy(0.75f, ao.floats(), y.floats(), n);
      for (size_t i = 0; i < n; ++i) {
        const double expected = 0.75 * a[i] + b[i];
        ASSERT_NEAR(y.floats()[i], expected, 2 * kU * (std::abs(0.75 * a[i]) + std::abs(b[i]))) << i;
      }
    });
  }
}

TEST(RmsNormTest, MatchesDoubleReference) {
  for (size_t n : kLengths) {
    std::mt19937 rng(n + 1);
    const std::vector<float> x = random_floats(rng, n, -3, 3), w = random_floats(rng, n, 0.5, 1.5);
    double ms = 0;
    for (float v : x) ms += double(v) * v;
    const double inv = 1.0 / std::sqrt(ms / n + 1e-6);
    OddBuffer xo(x, 4), wo(w, 4);
    for_each_target([&] {
      std::vector<float> out(n);
      rms_norm(xo.floats(), wo.floats(), n, 1e-6f, out.data());
      for (size_t i = 0; i < n; ++i) {
        const double expected = w[i] * x[i] * inv;
        ASSERT_NEAR(out[i], expected, (n + 8) * kU * std::abs(expected) + 1e-30) << "n " << n << " i " << i;
      }
      OddBuffer in_place(x, 4);  // out may alias x
      rms_norm(in_place.floats(), wo.floats(), n, 1e-6f, in_place.floats());
      ASSERT_EQ(0, std::memcmp(in_place.floats(), out.data(), n * 4));
    });
  }
}

TEST(RopeTest, RotatesPairsHalfApart) {
  for (size_t head_dim : {2, 6, 64, 128, 34}) {
    std::mt19937 rng(head_dim);
    const std::vector<float> head = random_floats(rng, head_dim, -2, 2);
    std::vector<float> cos(head_dim / 2), sin(head_dim / 2);
    for (size_t j = 0; j < head_dim / 2; ++j) {
      const double angle = 7.0 * std::pow(10000.0, -2.0 * j / head_dim);
      cos[j] = static_cast<float>(std::cos(angle));
      sin[j] = static_cast<float>(std::sin(angle));
    }
    for_each_target([&] {
      OddBuffer h(head, 4);
      rope_neox(h.floats(), head_dim, cos.data(), sin.data());
      const size_t half = head_dim / 2;
      for (size_t j = 0; j < half; ++j) {
        const double x1 = head[j], x2 = head[j + half];
        const double lo = x1 * cos[j] - x2 * sin[j], hi = x2 * cos[j] + x1 * sin[j];
        const double tol = 3 * kU * (std::abs(x1 * cos[j]) + std::abs(x2 * sin[j]) + std::abs(x2 * cos[j]) +
                                     std::abs(x1 * sin[j]));
        ASSERT_NEAR(h.floats()[j], lo, tol) << j;
        ASSERT_NEAR(h.floats()[j + half], hi, tol) << j;
      }
    });
  }
}

// Relative accuracy required of the exp-based kernels (Highway's Exp is within 1 ulp).
constexpr double kExpRelTol = 2e-6;

TEST(SoftmaxTest, MatchesDoubleReference) {
  for (size_t n : kLengths) {
    std::mt19937 rng(n + 2);
    const std::vector<float> x = random_floats(rng, n, -30, 30);
    double max = -HUGE_VAL, sum = 0;
    for (float v : x) max = std::max(max, double(v));
    for (float v : x) sum += std::exp(v - max);
    for_each_target([&] {
      OddBuffer y(x, 4);
      softmax(y.floats(), n);
      for (size_t i = 0; i < n; ++i) {
        const double expected = std::exp(x[i] - max) / sum;
        // x - max is rounded in f32 (error up to u*|x - max|, which exp turns into a relative error),
        // then exp (kExpRelTol), then a sum of n terms and one division.
        const double rel = kExpRelTol + (std::abs(x[i] - max) + n + 2) * kU;
        ASSERT_NEAR(y.floats()[i], expected, rel * expected + 1e-38) << "n " << n << " i " << i;
      }
    });
  }
}

TEST(SiluMulTest, MatchesDoubleReferenceIncludingLargeMagnitudes) {
  for (size_t n : kLengths) {
    std::mt19937 rng(n + 3);
    std::vector<float> gate = random_floats(rng, n, -20, 20);
    gate[0] = n > 1 ? -150.0f : 95.0f;  // exp(-g) would overflow f32 for g = -150
    const std::vector<float> up = random_floats(rng, n, -2, 2);
    OddBuffer g(gate, 4), u(up, 4);
    for_each_target([&] {
      std::vector<float> out(n);
      silu_mul(g.floats(), u.floats(), n, out.data());
      for (size_t i = 0; i < n; ++i) {
        const double gi = gate[i];
        const double expected = gi / (1.0 + std::exp(-gi)) * up[i];
        ASSERT_NEAR(out[i], expected, kExpRelTol * std::abs(expected) + 1e-37) << "g " << gi;
      }
    });
  }
}

TEST(ConvertF32ToBf16, EveryTargetRoundsAsTheScalarDefinition) {
  // Ties (…8000 low halves), carries into the exponent, infinities, NaNs, subnormals, odd lengths.
  std::vector<float> in = {1.0f, -2.5f, 0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 1e-40f, -1e-42f, FLT_MAX,
                           std::bit_cast<float>(0x3f808000u), std::bit_cast<float>(0x3f818000u),
                           std::bit_cast<float>(0x3fffffffu), std::bit_cast<float>(0x7f7fffffu),
                           std::bit_cast<float>(0x7f800001u)};
  std::mt19937 rng(5);
  for (int i = 0; i < 1000; ++i) in.push_back(std::bit_cast<float>(static_cast<uint32_t>(rng())));
  std::vector<uint16_t> expected(in.size());
  for (size_t i = 0; i < in.size(); ++i) expected[i] = f32_to_bf16(in[i]);
  testing::for_each_target([&] {
    for (size_t n : {in.size(), size_t{13}, size_t{1}}) {
      std::vector<uint16_t> got(n);
      convert_f32_to_bf16(in.data(), n, got.data());
      EXPECT_TRUE(std::equal(got.begin(), got.end(), expected.begin())) << "n=" << n;
    }
  });
}

TEST(FirstNonFinite, EveryTargetFindsTheFirst) {
  testing::for_each_target([&] {
    for (size_t n : {size_t{0}, size_t{1}, size_t{17}, size_t{1000}}) {
      std::vector<float> v(n, 1.5f);
      EXPECT_EQ(first_non_finite(v.data(), n), n);
      for (size_t at : {n / 2, n - 1}) {
        if (n == 0) continue;
        for (float bad : {NAN, INFINITY, -INFINITY}) {
          std::vector<float> w = v;
          w[at] = bad;
          if (at + 1 < n) w[n - 1] = NAN;  // a later one does not hide the first
          EXPECT_EQ(first_non_finite(w.data(), n), at) << "n=" << n;
        }
      }
    }
  });
}

// The fused conversion and check, across its 4096-value chunks: the values of convert_to_f32 (up to the
// chunk that holds the first bad one) and the index first_non_finite gives, from bfloat16 input.
TEST(ConvertToF32Checked, ConvertsAndFindsTheFirstAcrossChunks) {
  testing::for_each_target([&] {
    for (size_t n : {size_t{0}, size_t{5}, size_t{4096}, size_t{10000}}) {
      std::vector<uint16_t> in(n);
      for (size_t i = 0; i < n; ++i) in[i] = f32_to_bf16(static_cast<float>(i % 97) * 0.25f - 3.0f);
      std::vector<float> expected(n), got(n);
      convert_to_f32(DType::kBF16, in.data(), n, expected.data());
      EXPECT_EQ(convert_to_f32_checked(DType::kBF16, in.data(), n, got.data()), n);
      EXPECT_EQ(expected, got) << "n=" << n;
      for (size_t at : {size_t{0}, size_t{4095}, size_t{4096}, n - 1}) {
        if (at >= n) continue;
        for (float bad : {NAN, INFINITY, -INFINITY}) {
          std::vector<uint16_t> w = in;
          w[at] = f32_to_bf16(bad);
          w[n - 1] = f32_to_bf16(NAN);  // a later one does not hide the first
          EXPECT_EQ(convert_to_f32_checked(DType::kBF16, w.data(), n, got.data()), at) << "n=" << n;
        }
      }
    }
  });
}

}  // namespace
}  // namespace quantlab::kernels
