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
#include "kernels/probes.h"

namespace quantlab::bench {

BandwidthProbe::BandwidthProbe(ThreadPool& pool, size_t bytes) : pool_(pool), words_(bytes / sizeof(float)) {
  buffer_.reset(new float[words_]);
  // Touch every page from the threads that will read it later (first-touch placement).
  pool_.parallel_for(words_, 1 << 16, [&](size_t b, size_t e, size_t) { std::fill(&buffer_[b], &buffer_[e], 1.0f); });
}

BandwidthResult BandwidthProbe::measure(int passes) const {
  std::vector<float> sums(pool_.size() * 16, 0.0f);  // padded per worker: no false sharing
  double best = 1e30;
  for (int pass = 0; pass <= passes; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    pool_.parallel_for(words_, 1 << 16, [&](size_t b, size_t e, size_t w) {
      sums[w * 16] += kernels::stream_sum(&buffer_[b], e - b);  // the Highway read loop
    });
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (pass > 0) best = std::min(best, secs);  // pass 0 is the warm-up
  }
  // Keep the sums observable so the reads cannot be optimized away.
  [[maybe_unused]] static volatile float sink;
  for (float s : sums) sink = s;
  return {static_cast<double>(words_ * sizeof(float)) / 1e9 / best, words_ * sizeof(float), pool_.size()};
}

BandwidthResult measure_read_bandwidth(ThreadPool& pool, size_t bytes, int passes) {
  return BandwidthProbe(pool, bytes).measure(passes);
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
