#include "core/thread_pool.h"

#include <algorithm>
#include <exception>

namespace quantlab {

namespace {
// Decode issues a few hundred parallel sections per token, each a few tens of microseconds long; a
// futex sleep and wake costs about as much as the section. So both sides first poll for a short
// while (bounded: a pool larger than the machine must not burn cores for long), then sleep.
constexpr int kSpinIterations = 20000;
}  // namespace

size_t hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

ThreadPool::ThreadPool(size_t num_threads)
    : num_threads_(num_threads == 0 ? hardware_threads() : num_threads) {
  for (size_t i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_.store(true, std::memory_order_release);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(size_t worker) {
  size_t seen = 0;
  for (;;) {
    bool ready = false;
    for (int i = 0; i < kSpinIterations && !ready; ++i)
      ready = generation_.load(std::memory_order_acquire) != seen || stop_.load(std::memory_order_acquire);
    if (!ready) {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] {
        return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen;
      });
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = generation_.load(std::memory_order_acquire);
    (*job_.load(std::memory_order_acquire))(worker);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard lock(mutex_);  // pairs with the caller's predicate check: no lost wake-up
      done_.notify_one();
    }
  }
}

void ThreadPool::run_on_all(const std::function<void(size_t)>& fn) {
  if (num_threads_ == 1) {
    fn(0);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
  const std::function<void(size_t)> guarded = [&](size_t w) {
    try {
      fn(w);
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  {
    std::lock_guard lock(mutex_);
    job_.store(&guarded, std::memory_order_release);
    pending_.store(workers_.size(), std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_.notify_all();
  guarded(0);
  bool done = false;
  for (int i = 0; i < kSpinIterations && !done; ++i) done = pending_.load(std::memory_order_acquire) == 0;
  if (!done) {
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
  }
  if (error) std::rethrow_exception(error);
}

void ThreadPool::parallel_for(size_t n, size_t min_chunk, const std::function<void(size_t, size_t, size_t)>& fn,
                              size_t chunks_per_thread) {
  if (n == 0) return;
  min_chunk = std::max<size_t>(min_chunk, 1);
  if (num_threads_ == 1 || n <= min_chunk) {
    fn(0, n, 0);
    return;
  }
  const size_t chunks = std::max<size_t>(1, chunks_per_thread) * num_threads_;
  const size_t chunk = std::max(min_chunk, (n + chunks - 1) / chunks);
  std::atomic<size_t> next{0};
  run_on_all([&](size_t worker) {
    for (;;) {
      const size_t begin = next.fetch_add(chunk, std::memory_order_relaxed);
      if (begin >= n) return;
      fn(begin, std::min(n, begin + chunk), worker);
    }
  });
}

void ThreadPool::parallel_for_guided(size_t n, size_t min_chunk,
                                     const std::function<void(size_t, size_t, size_t)>& fn) {
  if (n == 0) return;
  min_chunk = std::max<size_t>(min_chunk, 1);
  if (num_threads_ == 1 || n <= min_chunk) {
    fn(0, n, 0);
    return;
  }
  const size_t divisor = num_threads_;
  std::atomic<size_t> next{0};
  run_on_all([&](size_t worker) {
    size_t begin = next.load(std::memory_order_relaxed);
    for (;;) {
      if (begin >= n) return;
      const size_t size = std::min(n - begin, std::max(min_chunk, (n - begin) / divisor));
      if (!next.compare_exchange_weak(begin, begin + size, std::memory_order_relaxed)) continue;
      fn(begin, begin + size, worker);
      begin = next.load(std::memory_order_relaxed);
    }
  });
}

}  // namespace quantlab
