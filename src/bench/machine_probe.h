// Measurements of the machine itself, taken in the same run as a benchmark so that its numbers can
// be given as ratios (GB/s of input against memory bandwidth, tokens/s against the roofline).
#pragma once

#include <cstddef>
#include <string>

#include "core/thread_pool.h"
#include "eval/report_schema.h"

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

// The machine a bench run reports: CPU, SIMD target, threads (0: one per hardware thread) and the
// memory read bandwidth the plan's decode bound divides by. given_gb_per_s > 0 is recorded as given;
// otherwise a quick probe (256 MiB, best of 3 passes, about half a second) measures it with `threads`
// workers, the count the bench workers decode with.
eval::MachineInfo describe_machine(size_t threads, double given_gb_per_s);

}  // namespace quantlab::bench
