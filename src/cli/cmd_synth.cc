// quantlab synth OUT --like qwen3-0.6b|qwen3-8b|qwen3-30b-a3b|llama-3.2-1b|qwen2.5-0.5b|qwen2.5-3b|qwen2.5-7b [--layers N]
//                    [--config FILE] [--dtype D] [--seed S] [--threads N] [--overwrite]
//                    [--bits B [--group-size G]]   (straight into MLX's quantized layout, as `quantize`)
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/thread_pool.h"
#include "quant/synth.h"

namespace quantlab::cli {

namespace {

struct SynthArgs {
  std::string output, like, config_file, dtype = "bfloat16", max_shard = "5GiB";
  int64_t layers = 0;
  int bits = 0, group_size = 64;  // bits 0: the float checkpoint
  uint64_t seed = 0;
  size_t threads = 0;
  bool overwrite = false, json = false, quiet = false;
};

nlohmann::ordered_json load_config(const SynthArgs& a, DType dtype) {
  if (a.like.empty() == a.config_file.empty())
    fail(ErrorKind::kUsage, "synth: give exactly one of --like NAME or --config FILE");
  if (!a.like.empty())
    return quant::synth_config(a.like, a.layers > 0 ? std::optional<int64_t>(a.layers) : std::nullopt, dtype);
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(read_text_file(a.config_file));
  } catch (const nlohmann::json::exception& e) {
    fail_input("{}: not valid JSON: {}", a.config_file, e.what());
  }
  if (a.layers > 0) quant::set_layer_count(j, a.layers);
  return j;
}

void run_synth(const SynthArgs& a) {
  quant::SynthOptions o;
  o.dtype = parse_dtype_flag(a.dtype).value_or(DType::kBF16);
  o.seed = a.seed;
  o.overwrite = a.overwrite;
  o.show_progress = !a.quiet && !a.json;
  o.max_shard_bytes = parse_size(a.max_shard, "--max-shard-size");
  if (a.bits > 0) o.quantize = quant::PlanOptions{a.bits, a.group_size, {}, {}, {}};
  ThreadPool pool(a.threads);
  const auto r = quant::synthesize_model(load_config(a, o.dtype), a.output, o, pool);
  const double gbps = r.seconds > 0 ? r.tensor_bytes / 1e9 / r.seconds : 0;
  if (a.json) {
    nlohmann::ordered_json j = {{"output", a.output},       {"tensors", r.tensors},
                                {"parameters", r.parameters}, {"tensor_bytes", r.tensor_bytes},
                                {"shards", r.shards},       {"seconds", r.seconds},
                                {"gb_per_s", gbps},         {"threads", pool.size()}};
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("synthesized {}: {} tensors, {:.3f} B parameters, {} in {} shard(s), {:.2f} s, {:.2f} GB/s\n",
             a.output, r.tensors, r.parameters / 1e9, human_bytes(r.tensor_bytes), r.shards.size(), r.seconds, gbps);
}

}  // namespace

void register_synth(CLI::App& app) {
  auto args = std::make_shared<SynthArgs>();
  auto* cmd = app.add_subcommand("synth", "Write a deterministic random checkpoint shaped like a real model");
  cmd->add_option("output", args->output, "Output directory (must not exist unless --overwrite)")->required();
  cmd->add_option("--like", args->like, "Model to imitate: qwen3-0.6b, qwen3-8b, qwen3-30b-a3b, llama-3.2-1b, qwen2.5-0.5b, qwen2.5-3b, qwen2.5-7b");
  cmd->add_option("--config", args->config_file, "Or: any Qwen3 / Qwen3-MoE / Llama config.json to imitate");
  cmd->add_option("--layers", args->layers, "Keep only the first N layers (smaller, same per-layer shapes)")
      ->check(CLI::Range(int64_t{1}, int64_t{1000}));
  add_dtype_option(cmd, &args->dtype, "Storage dtype (default bfloat16, as the Hub checkpoints)");
  cmd->add_option("--seed", args->seed, "Random seed (same seed, same bytes)");
  cmd->add_option("--max-shard-size", args->max_shard, "Largest shard (e.g. 5GiB, 500MB)");
  auto* bits = cmd->add_option("--bits", args->bits,
                                "Write the checkpoint quantized (MLX affine, round to nearest) as `quantize --bits` "
                                "would, without writing the float one: 2,3,4,5,6,8 or 7")
                   ->check(bit_width_check());
  cmd->add_option("--group-size", args->group_size, "Weights per scale/bias group, with --bits")
      ->check(group_size_check())
      ->needs(bits);
  add_threads_option(cmd, &args->threads);
  cmd->add_flag("--overwrite", args->overwrite, "Replace OUTPUT if it exists");
  cmd->add_flag("--json", args->json, "Print a JSON summary");
  cmd->add_flag("--quiet", args->quiet, "No progress bar");
  cmd->callback([args] { run_synth(*args); });
}

}  // namespace quantlab::cli
