// A one-line progress bar on stderr for long work: items done, throughput in GB/s, ETA.
// Silent unless stderr is a terminal, so logs and pipes stay clean. Thread-safe: advance() may be
// called from workers.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace quantlab {

class Progress {
 public:
  // total_bytes may be 0 when unknown; enabled=false forces silence (e.g. --quiet or --json).
  Progress(std::string label, uint64_t total_items, uint64_t total_bytes, bool enabled = true);
  ~Progress();
  void advance(uint64_t items, uint64_t bytes);
  void finish();
  static bool stderr_is_terminal();

 private:
  void draw_locked(bool final_line);
  std::string label_;
  uint64_t total_items_, total_bytes_;
  uint64_t items_ = 0, bytes_ = 0;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
  std::mutex mutex_;
};

}  // namespace quantlab
