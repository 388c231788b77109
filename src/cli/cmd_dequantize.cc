// quantlab dequantize IN OUT [--dtype ...]
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/thread_pool.h"
#include "quant/dequantizer.h"

namespace quantlab::cli {

namespace {
struct DequantizeArgs {
  std::string input, output, dtype, max_shard = "5GiB";
  size_t threads = 0;
  bool overwrite = false, quiet = false;
};
}  // namespace

void register_dequantize(CLI::App& app) {
  auto a = std::make_shared<DequantizeArgs>();
  auto* cmd = app.add_subcommand("dequantize",
                                 "Turn an MLX-quantized model back into a Hugging Face float checkpoint");
  cmd->add_option("input", a->input, "Quantized model directory")->required();
  cmd->add_option("output", a->output, "Output directory")->required();
  add_dtype_option(cmd, &a->dtype, "Output float dtype (default: the dtype of the scales)");
  cmd->add_option("--max-shard-size", a->max_shard, "Largest output shard (e.g. 5GiB)");
  add_threads_option(cmd, &a->threads);
  cmd->add_flag("--overwrite", a->overwrite, "Replace OUTPUT if it exists");
  cmd->add_flag("--quiet", a->quiet, "No progress bar");
  cmd->callback([a] {
    quant::DequantizeOptions o;
    o.dtype = parse_dtype_flag(a->dtype);
    o.overwrite = a->overwrite;
    o.show_progress = !a->quiet;
    o.max_shard_bytes = parse_size(a->max_shard, "--max-shard-size");
    ThreadPool pool(a->threads);
    const auto r = quant::dequantize_model(a->input, a->output, o, pool);
    fmt::print("dequantized {} modules of {} -> {} ({}), {:.2f} s\n", r.modules, a->input, a->output,
               human_bytes(r.output_bytes), r.seconds);
  });
}

}  // namespace quantlab::cli
