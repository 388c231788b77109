// Requests served one at a time in arrival order (batch 1) by one worker thread, from a bounded queue:
// a request that finds `max_waiting` others waiting is refused at once (the server answers 503 with
// Retry-After) rather than left to time out. close() refuses new work and drops what is waiting, while
// the request in flight runs to its end (SIGTERM).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace quantlab::serve {

class RequestQueue {
 public:
  struct Job {
    std::function<void()> run;     // on the worker thread
    std::function<void()> cancel;  // instead of run, when the queue closes before it started
  };

  explicit RequestQueue(size_t max_waiting);
  ~RequestQueue();
  RequestQueue(const RequestQueue&) = delete;
  RequestQueue& operator=(const RequestQueue&) = delete;

  // False when the queue is full or closed (the job is not taken).
  bool try_push(Job job);
  // Refuses new jobs, cancels the waiting ones, and returns once the job in flight has finished.
  void close();

  size_t waiting() const;
  size_t rejected() const;  // jobs refused because the queue was full
  size_t completed() const;

 private:
  void work();

  const size_t max_waiting_;
  mutable std::mutex mutex_;
  std::condition_variable wake_, idle_;
  std::deque<Job> jobs_;
  bool closed_ = false, busy_ = false;
  size_t rejected_ = 0, completed_ = 0;
  std::thread worker_;
};

}  // namespace quantlab::serve
