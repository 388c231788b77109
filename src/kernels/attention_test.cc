// Attention kernels against a double-precision reference and against each other (several queries or
// heads at once give each exactly its single-query result), on every compiled target.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/kernels_test_util.h"

namespace quantlab::kernels {
namespace {

using testing::for_each_target;
using testing::random_floats;

constexpr double kU = FLT_EPSILON / 2;  // unit roundoff of f32
// Relative accuracy required of the exp-based kernels (Highway's Exp is within 1 ulp); as in
// elementwise_test.cc.
constexpr double kExpRelTol = 2e-6;

TEST(AttendHeadTest, MatchesDoubleReference) {
  const size_t head_dim = 64, kv_stride = 72;  // stride > head_dim: interleaved heads in the cache
  for (size_t n_ctx : {1, 5, 40}) {
    std::mt19937 rng(n_ctx);
    const std::vector<float> q = random_floats(rng, head_dim, -1, 1);
    const std::vector<float> k = random_floats(rng, n_ctx * kv_stride, -1, 1);
    const std::vector<float> v = random_floats(rng, n_ctx * kv_stride, -1, 1);
    const float scale = 0.125f;
    std::vector<double> p(n_ctx);
    double max = -HUGE_VAL, sum = 0;
    for (size_t t = 0; t < n_ctx; ++t) {
      for (size_t d = 0; d < head_dim; ++d) p[t] += double(q[d]) * k[t * kv_stride + d];
      p[t] *= scale;
      max = std::max(max, p[t]);
    }
    for (double& s : p) sum += (s = std::exp(s - max));
    for_each_target([&] {
      std::vector<float> scratch(n_ctx + 1), out(head_dim);
      attend_head(q.data(), k.data(), v.data(), n_ctx, head_dim, kv_stride, scale, scratch.data(), out.data());
      for (size_t d = 0; d < head_dim; ++d) {
        double expected = 0, mag = 0;
        for (size_t t = 0; t < n_ctx; ++t) {
          expected += p[t] / sum * v[t * kv_stride + d];
          mag += p[t] / sum * std::abs(v[t * kv_stride + d]);
        }
        // Scores carry dot-product rounding (head_dim terms) into exp; then n_ctx weighted terms.
        ASSERT_NEAR(out[d], expected, (kExpRelTol + (head_dim + n_ctx + 8) * kU) * mag * 4) << d;
      }
    });
  }
}

// Several queries at once (prefill) give each query exactly what it gets alone (decode, its own code
// path), for partial blocks, contexts that are not multiples of the key block, and head dims on and
// off the lane grid.
TEST(AttendQueriesTest, EachQueryEqualsItsSingleQueryResult) {
  for (size_t head_dim : {64, 48, 20}) {  // 48: whole vectors, not all in blocks of four
    const size_t kv_stride = head_dim + 8, q_stride = head_dim + 3, out_stride = head_dim + 5;
    for (size_t count : {1, 2, 3, 4}) {
      for (size_t n_ctx : {1, 6, 33}) {
        SCOPED_TRACE(::testing::Message() << head_dim << " dims, " << count << " queries, " << n_ctx << " positions");
        std::mt19937 rng(head_dim * 100 + count * 10 + n_ctx);
        const size_t total = n_ctx + count - 1;
        const std::vector<float> q = random_floats(rng, count * q_stride, -2, 2);
        const std::vector<float> k = random_floats(rng, total * kv_stride, -2, 2);
        const std::vector<float> v = random_floats(rng, total * kv_stride, -1, 1);
        for_each_target([&] {
          std::vector<float> scratch(count * (n_ctx + count)), out(count * out_stride, -7.0f);
          attend_queries(q.data(), q_stride, count, k.data(), v.data(), n_ctx, head_dim, kv_stride, 0.3f,
                         scratch.data(), out.data(), out_stride);
          for (size_t i = 0; i < count; ++i) {
            std::vector<float> alone_scratch(n_ctx + i + 1), alone(head_dim);
            attend_head(q.data() + i * q_stride, k.data(), v.data(), n_ctx + i, head_dim, kv_stride, 0.3f,
                        alone_scratch.data(), alone.data());
            ASSERT_EQ(0, std::memcmp(alone.data(), out.data() + i * out_stride, head_dim * 4)) << "query " << i;
            ASSERT_EQ(out[i * out_stride + head_dim], -7.0f) << "wrote past the head of query " << i;
          }
        });
      }
    }
  }
}

// Heads that share a KV head (a decode step under grouped-query attention) each get exactly what they
// get alone, all over the same positions.
TEST(AttendHeadsTest, EachHeadEqualsItsSingleHeadResult) {
  for (size_t head_dim : {64, 48, 20}) {
    const size_t kv_stride = head_dim + 8, q_stride = head_dim + 3, out_stride = head_dim + 5;
    for (size_t count : {1, 2, 3, 4}) {
      for (size_t n_ctx : {1, 6, 33}) {
        SCOPED_TRACE(::testing::Message() << head_dim << " dims, " << count << " heads, " << n_ctx << " positions");
        std::mt19937 rng(head_dim * 100 + count * 10 + n_ctx + 7);
        const std::vector<float> q = random_floats(rng, count * q_stride, -2, 2);
        const std::vector<float> k = random_floats(rng, n_ctx * kv_stride, -2, 2);
        const std::vector<float> v = random_floats(rng, n_ctx * kv_stride, -1, 1);
        for_each_target([&] {
          std::vector<float> scratch(count * n_ctx), out(count * out_stride, -7.0f);
          attend_heads(q.data(), q_stride, count, k.data(), v.data(), n_ctx, head_dim, kv_stride, 0.3f,
                       scratch.data(), out.data(), out_stride);
          for (size_t i = 0; i < count; ++i) {
            std::vector<float> alone_scratch(n_ctx), alone(head_dim);
            attend_head(q.data() + i * q_stride, k.data(), v.data(), n_ctx, head_dim, kv_stride, 0.3f,
                        alone_scratch.data(), alone.data());
            ASSERT_EQ(0, std::memcmp(alone.data(), out.data() + i * out_stride, head_dim * 4)) << "head " << i;
            ASSERT_EQ(out[i * out_stride + head_dim], -7.0f) << "wrote past head " << i;
          }
        });
      }
    }
  }
}

}  // namespace
}  // namespace quantlab::kernels
