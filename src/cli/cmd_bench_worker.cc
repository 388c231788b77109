// quantlab bench-worker --spec JSON --result FILE (hidden): the child process `quantlab bench` starts
// for each model. It measures one model (bench::run_worker) and writes its result as JSON to FILE.
#include <CLI/CLI.hpp>
#include <string>

#include "bench/runner.h"
#include "core/error.h"

namespace quantlab::cli {

void register_bench_worker(CLI::App& app) {
  struct Args {
    std::string spec, result;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(std::string(bench::kWorkerCommand), "Measure one model for `quantlab bench`");
  cmd->group("");  // hidden from --help: only `bench` starts it
  cmd->add_option("--spec", a->spec, "The worker spec (JSON)")->required();
  cmd->add_option("--result", a->result, "Where to write the result JSON")->required();
  cmd->callback([a] {
    // The parent reads a failure from the result file; the message on stderr is for the person watching.
    if (const std::string error = bench::run_worker_command(a->spec, a->result); !error.empty())
      fail_input("{}", error);
  });
}

}  // namespace quantlab::cli
