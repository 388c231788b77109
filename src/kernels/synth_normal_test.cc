#include "kernels/synth_normal.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "kernels/kernels_test_util.h"

namespace quantlab::kernels {
namespace {

// Any float-valued table does: the kernel's contract is bit-equality with the definition.
struct Table {
  std::vector<double> value, delta;
  Table() : value(1 << kSynthBucketBits), delta(1 << kSynthBucketBits) {
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-4.0f, 4.0f);
    for (size_t b = 0; b < value.size(); ++b) {
      value[b] = u(rng);
      delta[b] = u(rng) * 1e-3f;
    }
  }
  SynthNormalTable view() const { return {value.data(), delta.data()}; }
};

TEST(SynthNormal, EveryTargetGivesTheDefinitionsBits) {
  const Table table;
  for (size_t n : {size_t{1}, size_t{7}, size_t{64}, size_t{1000}, size_t{4099}}) {
    for (uint32_t threshold : {0u, 1u << 30}) {  // none, and a quarter of the elements outliers
      SynthNormalRun run;
      run.base = 0x0123456789abcdefull + n;
      run.scale = 0.0173f;
      run.outlier_threshold = threshold;
      run.outlier_magnitude = 20 * run.scale;
      std::vector<float> expected(n);
      synth_normal_fill_reference(run, table.view(), n, expected.data());
      size_t outliers = 0;
      for (float v : expected) outliers += std::fabs(v) == run.outlier_magnitude;
      if (threshold != 0 && n >= 1000) {
        EXPECT_GT(outliers, n / 8);
      }
      testing::for_each_target([&] {
        std::vector<float> got(n, -1.0f);
        synth_normal_fill(run, table.view(), n, got.data());
        EXPECT_EQ(0, std::memcmp(got.data(), expected.data(), n * sizeof(float))) << "n=" << n;
      });
    }
  }
}

TEST(SynthNormal, ARunIsTheSameValuesAsItsPieces) {
  // Element i depends only on base + (i+1)·γ: a run split anywhere gives the same values.
  const Table table;
  SynthNormalRun run;
  run.base = 42;
  std::vector<float> whole(300), parts(300);
  synth_normal_fill(run, table.view(), whole.size(), whole.data());
  SynthNormalRun second = run;
  second.base = run.base + 123 * kSplitMixGamma;
  synth_normal_fill(run, table.view(), 123, parts.data());
  synth_normal_fill(second, table.view(), 177, parts.data() + 123);
  EXPECT_EQ(whole, parts);
}

}  // namespace
}  // namespace quantlab::kernels
