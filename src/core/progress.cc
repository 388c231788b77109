#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace quantlab {

bool Progress::stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

Progress::Progress(std::string label, uint64_t total_items, uint64_t total_bytes, bool enabled)
    : label_(std::move(label)), total_items_(total_items), total_bytes_(total_bytes),
      enabled_(enabled && stderr_is_terminal()), start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { finish(); }

void Progress::advance(uint64_t items, uint64_t bytes) {
  std::lock_guard lock(mutex_);
  items_ += items;
  bytes_ += bytes;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  draw_locked(false);
}

void Progress::finish() {
  std::lock_guard lock(mutex_);
  if (finished_) return;
  finished_ = true;
  if (enabled_) draw_locked(true);
}

void Progress::draw_locked(bool final_line) {
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double frac = total_bytes_ > 0   ? double(bytes_) / double(total_bytes_)
                      : total_items_ > 0 ? double(items_) / double(total_items_)
                                         : 0.0;
  constexpr int kWidth = 28;
  const int filled = static_cast<int>(frac * kWidth + 0.5);
  std::string bar(static_cast<size_t>(std::min(filled, kWidth)), '#');
  bar.resize(kWidth, '.');
  const double gbps = secs > 0 ? double(bytes_) / 1e9 / secs : 0.0;
  const double eta = frac > 0.001 ? secs * (1.0 - frac) / frac : 0.0;
  std::string line = fmt::format("\r{} [{}] {}/{} ", label_, bar, items_, total_items_);
  if (total_bytes_ > 0 || bytes_ > 0) line += fmt::format("{:.2f} GB/s ", gbps);  // items without bytes: no rate
  line += final_line ? fmt::format("done in {:.1f}s\n", secs) : fmt::format("ETA {:.0f}s   ", eta);
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace quantlab
