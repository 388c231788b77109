#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "core/error.h"

namespace quantlab {
namespace {

TEST(ThreadPool, ParallelForCoversEveryIndexOnce) {
  for (size_t threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (size_t n : {0, 1, 7, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      pool.parallel_for(n, 1, [&](size_t b, size_t e, size_t worker) {
        ASSERT_LT(worker, pool.size());
        for (size_t i = b; i < e; ++i) hits[i]++;
      });
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << threads << " threads, n=" << n;
    }
  }
}

TEST(ThreadPool, ExceptionsReachTheCaller) {
  ThreadPool pool(3);
  EXPECT_THROW(pool.parallel_for(100, 1,
                                 [](size_t b, size_t, size_t) {
                                   if (b > 50) fail_input("bad row {}", b);
                                 }),
               Error);
  // The pool still works afterwards.
  std::atomic<size_t> sum{0};
  pool.parallel_for(10, 1, [&](size_t b, size_t e, size_t) { sum += e - b; });
  EXPECT_EQ(sum.load(), 10u);
}

TEST(ThreadPool, RunOnAllUsesEveryWorker) {
  ThreadPool pool(4);
  std::vector<std::atomic<int>> seen(4);
  pool.run_on_all([&](size_t w) { seen[w]++; });
  for (auto& s : seen) EXPECT_EQ(s.load(), 1);
}

}  // namespace
}  // namespace quantlab
