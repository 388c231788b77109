#include "bench/machine_probe.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "kernels/kernels.h"

namespace quantlab::bench {

BandwidthResult measure_read_bandwidth(ThreadPool& pool, size_t bytes, int passes) {
  const size_t words = bytes / sizeof(uint64_t);
  std::unique_ptr<uint64_t[]> buffer(new uint64_t[words]);
  // Touch every page from the threads that will read it later (first-touch placement).
  pool.parallel_for(words, 1 << 16, [&](size_t b, size_t e, size_t) {
    for (size_t i = b; i < e; ++i) buffer[i] = i;
  });
  std::vector<uint64_t> sums(pool.size() * 8, 0);  // padded per worker: no false sharing
  double best = 1e30;
  for (int pass = 0; pass <= passes; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.parallel_for(words, 1 << 16, [&](size_t b, size_t e, size_t w) {
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      size_t i = b;
      for (; i + 4 <= e; i += 4) {
        s0 += buffer[i];
        s1 += buffer[i + 1];
        s2 += buffer[i + 2];
        s3 += buffer[i + 3];
      }
      for (; i < e; ++i) s0 += buffer[i];
      sums[w * 8] += s0 + s1 + s2 + s3;
    });
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (pass > 0) best = std::min(best, secs);  // pass 0 is the warm-up
  }
  uint64_t total = 0;
  for (uint64_t s : sums) total += s;
  // Keep the sum observable so the reads cannot be optimized away.
  [[maybe_unused]] static volatile uint64_t sink;
  sink = total;
  return {static_cast<double>(words * sizeof(uint64_t)) / 1e9 / best, words * sizeof(uint64_t), pool.size()};
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown";
}

eval::MachineInfo describe_machine(size_t threads, double given_gb_per_s) {
  eval::MachineInfo m;
  m.cpu = cpu_model_name();
  m.simd_target = std::string(kernels::active_target());
  m.threads = threads ? threads : std::max(1u, std::thread::hardware_concurrency());
  if (given_gb_per_s > 0) {
    m.bandwidth_gb_per_s = given_gb_per_s;
    m.bandwidth_source = "given (--bandwidth)";
    return m;
  }
  ThreadPool pool(m.threads);
  const BandwidthResult r = measure_read_bandwidth(pool, size_t{256} << 20, 3);
  m.bandwidth_gb_per_s = r.read_gb_per_s;
  m.bandwidth_source = fmt::format("measured, {} MiB, {} threads", r.bytes >> 20, r.threads);
  return m;
}

}  // namespace quantlab::bench
