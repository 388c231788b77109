// quantlab quantize IN OUT --bits B --group-size G [--dtype ...] [--threads N]
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/thread_pool.h"
#include "quant/plan_file.h"
#include "quant/quantizer.h"

namespace quantlab::cli {

namespace {

struct QuantizeArgs {
  std::string input, output, dtype, max_shard = "5GiB", kernel = "simd";
  int bits = 4, group_size = 64;
  std::vector<std::string> overrides;
  std::string recipe, plan_file;
  size_t threads = 0;
  bool overwrite = false, json = false, quiet = false;
};

void run_quantize(const QuantizeArgs& a) {
  quant::QuantizeOptions o;
  if (!a.plan_file.empty()) {
    o.plan = quant::load_plan_file(a.plan_file);
  } else {
    o.plan.bits = a.bits;
    o.plan.group_size = a.group_size;
  }
  o.plan.recipe = a.recipe;
  o.plan.dtype = parse_dtype_flag(a.dtype);
  // The flag's rules come first: the first matching rule decides, so they win over a plan file's entries.
  std::vector<quant::ModuleOverride> flag_rules;
  for (const auto& text : a.overrides) flag_rules.push_back(quant::parse_module_override(text, o.plan.group_size));
  o.plan.overrides.insert(o.plan.overrides.begin(), flag_rules.begin(), flag_rules.end());
  o.write_plan_file = !a.recipe.empty() || !a.plan_file.empty() || !a.overrides.empty();
  o.max_shard_bytes = parse_size(a.max_shard, "--max-shard-size");
  o.overwrite = a.overwrite;
  o.show_progress = !a.quiet && !a.json;
  o.kernel = a.kernel == "scalar" ? quant::KernelPath::kScalarReference : quant::KernelPath::kSimd;
  ThreadPool pool(a.threads);
  const auto r = quant::quantize_model(a.input, a.output, o, pool);
  for (const auto& note : r.plan.notes) fmt::print(stderr, "{}\n", note);
  size_t quantized = 0;
  for (const auto& t : r.plan.tensors) quantized += t.quant.has_value();
  const double gbps = r.seconds > 0 ? r.input_bytes / 1e9 / r.seconds : 0;
  if (a.json) {
    nlohmann::ordered_json j = {{"output", a.output},        {"bits", a.bits},
                                {"group_size", a.group_size}, {"tensors", r.plan.tensors.size()},
                                {"quantized_modules", quantized}, {"input_bytes", r.input_bytes},
                                {"output_bytes", r.output_bytes}, {"seconds", r.seconds},
                                {"input_gb_per_s", gbps},     {"threads", pool.size()},
                                {"shards", r.shards}};
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("quantized {} -> {}: {} of {} tensors at {} bits, group {} ({} -> {}), {:.2f} s, {:.2f} GB/s\n",
             a.input, a.output, quantized, r.plan.tensors.size(), a.bits, a.group_size,
             human_bytes(r.input_bytes), human_bytes(r.output_bytes), r.seconds, gbps);
  if (a.bits == 7) fmt::print("note: 7-bit is a quantlab extension; mlx-lm refuses to load it\n");
}

}  // namespace

void register_quantize(CLI::App& app) {
  auto args = std::make_shared<QuantizeArgs>();
  auto* cmd = app.add_subcommand("quantize", "Quantize a float checkpoint to MLX affine N-bit files");
  cmd->add_option("input", args->input, "Model directory (config.json + *.safetensors)")->required();
  cmd->add_option("output", args->output, "Output directory (must not exist unless --overwrite)")->required();
  auto* bits = cmd->add_option("--bits", args->bits, "Bits per weight: 2,3,4,5,6,8 (MLX) or 7 (quantlab extension)")
                   ->check(bit_width_check());
  auto* group = cmd->add_option("--group-size", args->group_size, "Weights per scale/bias group")
                    ->check(group_size_check());
  cmd->add_option("--override", args->overrides,
                  "Per-module setting 'REGEX=BITS[:GROUP]' or 'REGEX=float' (repeatable; the first "
                  "matching rule decides; config.json gets mlx-lm's per-module entries)")
      ->allow_extra_args(false);
  auto* recipe = cmd->add_option("--recipe", args->recipe,
                                 "mlx-lm mixed recipe: mixed_2_6, mixed_3_4, mixed_3_6, mixed_4_6 (module for "
                                 "module as mlx_lm.convert --quant-predicate), or mixed_3_5, mixed_3_8, mixed_4_8");
  auto* plan = cmd->add_option("--plan", args->plan_file,
                               "Per-module plan (quantlab.plan/1 JSON, as `allocate` writes); sets bits/group too")
                   ->check(CLI::ExistingFile);
  plan->excludes(recipe)->excludes(bits)->excludes(group);
  add_dtype_option(cmd, &args->dtype, "Cast float tensors to this dtype first (default: config's dtype)");
  cmd->add_option("--max-shard-size", args->max_shard, "Largest output shard (e.g. 5GiB, 500MB)");
  cmd->add_option("--kernel", args->kernel, "simd (default) or scalar (the reference, for comparisons)")
      ->check(CLI::IsMember({"simd", "scalar"}));
  add_threads_option(cmd, &args->threads);
  cmd->add_flag("--overwrite", args->overwrite, "Replace OUTPUT if it exists");
  cmd->add_flag("--json", args->json, "Print a JSON summary");
  cmd->add_flag("--quiet", args->quiet, "No progress bar");
  cmd->callback([args] { run_quantize(*args); });
}

}  // namespace quantlab::cli
