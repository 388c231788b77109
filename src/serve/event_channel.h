// The hand-over of a streamed reply's server-sent events from the engine's worker thread to the
// connection's thread that writes them. The writer marks it abandoned when the client went away, which
// the producer sees as a refused push and stops generating.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>

namespace quantlab::serve {

class EventChannel {
 public:
  // False once the reader abandoned the stream.
  bool push(std::string event) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (abandoned_) return false;
      events_.push_back(std::move(event));
    }
    ready_.notify_one();
    return true;
  }
  void close() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
    }
    ready_.notify_one();
  }
  // Blocks for the next event; false once the channel is closed and drained.
  bool pop(std::string& event) {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [this] { return closed_ || !events_.empty(); });
    if (events_.empty()) return false;
    event = std::move(events_.front());
    events_.pop_front();
    return true;
  }
  void abandon() {
    std::lock_guard<std::mutex> lock(mutex_);
    abandoned_ = true;
    events_.clear();
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::string> events_;
  bool closed_ = false, abandoned_ = false;
};

}  // namespace quantlab::serve
