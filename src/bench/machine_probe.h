// Measurements of the machine itself, taken in the same run as a benchmark so that its numbers can
// be given as ratios (GB/s of input against memory bandwidth, tokens/s against the roofline).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "core/thread_pool.h"
#include "eval/report_schema.h"

namespace quantlab::bench {

struct BandwidthResult {
  double read_gb_per_s = 0;  // best of several passes, decimal GB/s
  size_t bytes = 0;
  size_t threads = 0;
};

// A buffer of `bytes` (1 GiB by default, far beyond the caches), placed by the pool's threads, that
// can be streamed again and again (engine_bench probes before and after every decode run) with the
// kernels' read loop (kernels::stream_sum, one slice per chunk of the pool).
class BandwidthProbe {
 public:
  explicit BandwidthProbe(ThreadPool& pool, size_t bytes = size_t{1} << 30);
  // The best of `passes` timed passes after one warm-up.
  BandwidthResult measure(int passes) const;

 private:
  ThreadPool& pool_;
  size_t words_;
  std::unique_ptr<float[]> buffer_;
};

// One probe, measured once.
BandwidthResult measure_read_bandwidth(ThreadPool& pool, size_t bytes = size_t{1} << 30, int passes = 5);

// CPU model name from /proc/cpuinfo (or "unknown").
std::string cpu_model_name();

// The machine a bench run reports: CPU, SIMD target, threads (0: one per hardware thread) and the
// memory read bandwidth the plan's decode bound divides by. given_gb_per_s > 0 is recorded as given;
// otherwise a quick probe (256 MiB, best of 3 passes, about half a second) measures it with `threads`
// workers, the count the bench workers decode with.
eval::MachineInfo describe_machine(size_t threads, double given_gb_per_s);

}  // namespace quantlab::bench
