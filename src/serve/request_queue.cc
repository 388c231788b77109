#include "serve/request_queue.h"

namespace quantlab::serve {

RequestQueue::RequestQueue(size_t max_waiting) : max_waiting_(max_waiting), worker_([this] { work(); }) {}

RequestQueue::~RequestQueue() {
  close();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  wake_.notify_all();
  worker_.join();
}

bool RequestQueue::try_push(Job job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return false;
    if (jobs_.size() >= max_waiting_ && (busy_ || max_waiting_ == 0)) {
      ++rejected_;
      return false;
    }
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
  return true;
}

void RequestQueue::close() {
  std::deque<Job> dropped;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    closed_ = true;
    dropped.swap(jobs_);
  }
  wake_.notify_all();
  for (Job& job : dropped)
    if (job.cancel) job.cancel();
  std::unique_lock<std::mutex> lock(mutex_);
  idle_.wait(lock, [this] { return !busy_; });
}

void RequestQueue::work() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return closed_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // closed and nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
      busy_ = true;
    }
    job.run();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      busy_ = false;
      ++completed_;
    }
    idle_.notify_all();
  }
}

size_t RequestQueue::waiting() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return jobs_.size();
}

size_t RequestQueue::rejected() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return rejected_;
}

size_t RequestQueue::completed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return completed_;
}

}  // namespace quantlab::serve
