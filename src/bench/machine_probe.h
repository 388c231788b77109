// Measurements of the machine itself, taken in the same run as a benchmark so that its numbers can
// be given as ratios (GB/s of input against memory bandwidth, tokens/s against the roofline).
#pragma once

#include <cstddef>
#include <string>

#include "core/thread_pool.h"

namespace quantlab::bench {

struct BandwidthResult {
  double read_gb_per_s = 0;  // best of several passes, decimal GB/s
  size_t bytes = 0;
  size_t threads = 0;
};

// Streams a buffer of `bytes` (default 1 GiB, far beyond the caches) with all pool threads, summing
// 64-bit words; reports the best of `passes` timed passes after one warm-up.
BandwidthResult measure_read_bandwidth(ThreadPool& pool, size_t bytes = size_t{1} << 30, int passes = 5);

// CPU model name from /proc/cpuinfo (or "unknown").
std::string cpu_model_name();

}  // namespace quantlab::bench
