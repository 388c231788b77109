// quantlab fuse BASE ADAPTER OUT [--dtype ...]
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/thread_pool.h"
#include "quant/fuse.h"

namespace quantlab::cli {

namespace {
struct FuseArgs {
  std::string base, adapter, output, dtype;
  size_t threads = 0;
  bool overwrite = false, json = false, quiet = false;
};

void print_report(const FuseArgs& a, const quant::FuseReport& r) {
  if (a.json) {
    nlohmann::ordered_json j = {{"output", a.output}, {"adapter_format", r.adapter_format},
                                {"quantized_base", r.quantized_base}, {"seconds", r.seconds}};
    if (r.retained) j["retained"] = *r.retained;
    auto& mods = j["modules"] = nlohmann::ordered_json::array();
    for (const auto& m : r.modules) {
      nlohmann::ordered_json e = {{"module", m.module}, {"delta_norm", m.delta_norm}};
      if (m.retained) e["retained"] = *m.retained;
      mods.push_back(e);
    }
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("fused {} adapter ({} modules) into {} -> {} in {:.2f} s\n", r.adapter_format, r.modules.size(), a.base,
             a.output, r.seconds);
  if (r.retained) {
    fmt::print("quantized base: the re-quantized weights keep {:.1f} % of the adapter's delta (projection on it)\n",
               100 * *r.retained);
    const quant::FusedModuleReport* worst = nullptr;
    for (const auto& m : r.modules)
      if (m.retained && (!worst || *m.retained < *worst->retained)) worst = &m;
    if (worst) fmt::print("least kept: {} ({:.1f} %)\n", worst->module, 100 * *worst->retained);
  }
}
}  // namespace

void register_fuse(CLI::App& app) {
  auto a = std::make_shared<FuseArgs>();
  auto* cmd = app.add_subcommand("fuse", "Fuse a LoRA adapter (PEFT or mlx-lm format) into a float or quantized base");
  cmd->add_option("base", a->base, "Base model directory (float or MLX-quantized)")->required();
  cmd->add_option("adapter", a->adapter, "Adapter directory (adapter_config.json + weights)")->required();
  cmd->add_option("output", a->output, "Output directory")->required();
  add_dtype_option(cmd, &a->dtype, "Output dtype for float bases (default: the base's)");
  add_threads_option(cmd, &a->threads);
  cmd->add_flag("--overwrite", a->overwrite, "Replace OUTPUT if it exists");
  cmd->add_flag("--json", a->json, "Machine-readable report");
  cmd->add_flag("--quiet", a->quiet, "No progress bar");
  cmd->callback([a] {
    quant::FuseOptions o;
    o.dtype = parse_dtype_flag(a->dtype);
    o.overwrite = a->overwrite;
    o.show_progress = !a->quiet && !a->json;
    ThreadPool pool(a->threads);
    print_report(*a, quant::fuse_adapter(a->base, a->adapter, a->output, o, pool));
  });
}

}  // namespace quantlab::cli
