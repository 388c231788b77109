#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <utility>
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

TEST(ThreadPool, GuidedCoversEveryIndexOnceInShrinkingChunksOfAtLeastTheMinimum) {
  for (size_t threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    for (size_t n : {0, 1, 7, 1000, 4099}) {
      for (size_t min_chunk : {1, 16}) {
        std::vector<std::atomic<int>> hits(n);
        std::mutex m;
        std::vector<std::pair<size_t, size_t>> chunks;
        pool.parallel_for_guided(n, min_chunk, [&](size_t b, size_t e, size_t worker) {
          ASSERT_LT(worker, pool.size());
          for (size_t i = b; i < e; ++i) hits[i]++;
          std::lock_guard lock(m);
          chunks.emplace_back(b, e);
        });
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << threads << " threads, n=" << n;
        std::sort(chunks.begin(), chunks.end());
        for (size_t c = 0; c < chunks.size(); ++c) {
          const size_t size = chunks[c].second - chunks[c].first;
          if (chunks[c].second == n) continue;  // the last chunk may be short
          EXPECT_GE(size, min_chunk) << "n=" << n;
          // Guided: a chunk is 1/threads of what was left when it was taken, so sizes never grow.
          if (c > 0 && threads > 1) {
            EXPECT_LE(size, std::max(min_chunk, chunks[c - 1].second - chunks[c - 1].first)) << "n=" << n;
          }
        }
        if (threads > 1 && n >= 1000) {
          EXPECT_GT(chunks.size(), threads) << "the end is shared in small chunks";
        }
      }
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
  EXPECT_THROW(pool.parallel_for_guided(100, 1,
                                        [](size_t b, size_t, size_t) {
                                          if (b > 50) fail_input("bad row {}", b);
                                        }),
               Error);
}

TEST(ThreadPool, RunOnAllUsesEveryWorker) {
  ThreadPool pool(4);
  std::vector<std::atomic<int>> seen(4);
  pool.run_on_all([&](size_t w) { seen[w]++; });
  for (auto& s : seen) EXPECT_EQ(s.load(), 1);
}

}  // namespace
}  // namespace quantlab
