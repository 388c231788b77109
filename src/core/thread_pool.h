// An explicit pool of worker threads, passed down to whoever needs it (no global pool).
// parallel_for splits [0, n) into contiguous chunks; callers that need results independent of the
// thread count must make each index's work independent of the chunking (e.g. write to slot i only,
// and reduce in index order afterwards).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace quantlab {

class ThreadPool {
 public:
  // num_threads == 0 means one per hardware thread. The calling thread takes part in the work, so
  // a pool of N threads starts N-1 workers.
  explicit ThreadPool(size_t num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t size() const { return num_threads_; }

  // Runs fn(begin, end, worker_index) over contiguous chunks covering [0, n), dynamically balanced
  // (an atomic chunk counter, as ggml does) with chunks of at least min_chunk indices.
  // worker_index < size() identifies per-thread scratch. Exceptions are rethrown on the caller.
  // chunks_per_thread sets the granularity: more chunks balance the end of a section better (decode's
  // matvecs, a few tens of microseconds each, use 16) at the cost of one atomic add per chunk.
  void parallel_for(size_t n, size_t min_chunk,
                    const std::function<void(size_t begin, size_t end, size_t worker)>& fn,
                    size_t chunks_per_thread = 4);

  // As parallel_for, with guided chunk sizes: each chunk is 1 / size() of what is left, at least
  // min_chunk, so a section starts with one long chunk per thread and ends with short ones that even
  // out the finish. For short sections that stream from memory, where each chunk's start costs a
  // prefetch ramp (decode's matvecs).
  void parallel_for_guided(size_t n, size_t min_chunk,
                           const std::function<void(size_t begin, size_t end, size_t worker)>& fn);

  // Runs fn(worker_index) once on every thread of the pool.
  void run_on_all(const std::function<void(size_t worker)>& fn);

 private:
  void worker_loop(size_t worker);
  size_t num_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::atomic<const std::function<void(size_t)>*> job_{nullptr};
  std::atomic<size_t> generation_{0};
  std::atomic<size_t> pending_{0};
  std::atomic<bool> stop_{false};
};

size_t hardware_threads();

}  // namespace quantlab
