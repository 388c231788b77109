// quantlab machine [--threads N] [--json]: this machine's memory bandwidth and CPU, the yardsticks
// every benchmark ratio in docs/BENCHMARKS.md is measured against.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench/machine_probe.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "kernels/kernels.h"

namespace quantlab::cli {

void register_machine(CLI::App& app) {
  auto threads = std::make_shared<size_t>(0);
  auto json = std::make_shared<bool>(false);
  auto mib = std::make_shared<size_t>(1024);
  auto* cmd = app.add_subcommand("machine", "Measure this machine: memory read bandwidth, SIMD target");
  add_threads_option(cmd, threads.get());
  cmd->add_option("--buffer-mib", *mib, "Size of the streamed buffer in MiB")->check(CLI::Range(16, 65536));
  cmd->add_flag("--json", *json, "Machine-readable output");
  cmd->callback([=] {
    ThreadPool pool(*threads);
    const auto bw = bench::measure_read_bandwidth(pool, *mib << 20);
    if (*json) {
      nlohmann::ordered_json j = {{"cpu", bench::cpu_model_name()}, {"threads", bw.threads},
                                  {"simd_target", kernels::active_target()},
                                  {"read_bandwidth_gb_per_s", bw.read_gb_per_s}};
      fmt::print("{}\n", j.dump(2));
      return;
    }
    fmt::print("cpu              {}\nthreads          {}\nsimd target      {}\nread bandwidth   {:.2f} GB/s\n",
               bench::cpu_model_name(), bw.threads, kernels::active_target(), bw.read_gb_per_s);
  });
}

}  // namespace quantlab::cli
