// quantlab quantize IN OUT --bits B --group-size G [--method rtn|gptq|delta ...] [--dtype ...] [--threads N]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "analysis/calibration.h"
#include "analysis/sequential_calibration.h"
#include "analysis/vocabulary_prior.h"
#include "analysis/fused_rows.h"
#include "analysis/mixed_quantize.h"
#include "cli/bit_widths.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "quant/plan.h"
#include "quant/plan_file.h"
#include "quant/quantizer.h"

namespace quantlab::cli {

namespace {

struct QuantizeArgs {
  std::string input, output, dtype, max_shard = "5GiB", kernel = "simd";
  int bits = 4, group_size = 64;
  std::vector<std::string> overrides;
  std::string recipe, plan_file;
  // The one-command allocation (analysis/mixed_quantize.h).
  std::string calibration, tools, base, adapter, objective, smaller_than, candidates = "2,3,4,5,6,8";
  double target_bpw = 0, by = 0;
  uint64_t max_bytes = 0;
  size_t threads = 0;
  bool overwrite = false, json = false, quiet = false, no_gains = false, cached_writes = false;
  // Rounding (quant/rounding.h).
  std::string method = "rtn", stats;
  double damp = 0.1, delta_weight = 1.0, vocab_prior = 0.0;
  bool act_order = false, sequential = false;
  size_t calibration_tokens = 64;
};

bool wants_allocation(const QuantizeArgs& a) {
  // --calibration alone asks for an allocation with round-to-nearest (wave 1's meaning); with gptq or
  // delta, or beside a plan, recipe or override that sets the widths, it is where the rounding's
  // statistics come from.
  const bool widths_given = !a.plan_file.empty() || !a.recipe.empty() || !a.overrides.empty();
  return a.target_bpw != 0 || a.max_bytes != 0 || !a.smaller_than.empty() ||
         (!a.calibration.empty() && a.method == "rtn" && !widths_given);
}

bool contains(const std::vector<quant::RoundingMethod>& methods, quant::RoundingMethod m) {
  return std::find(methods.begin(), methods.end(), m) != methods.end();
}

quant::QuantPlan resolved_plan(const std::string& input, const quant::PlanOptions& options) {
  const io::ModelWeights weights = io::ModelWeights::open(input);
  return quant::make_quant_plan(io::load_model_config(input), quant::source_tensors(weights), options);
}

// The methods the quantized modules will be rounded with: --method's, first, then those a plan file's
// "method" entries give modules (resolved as the quantizer resolves them: --override's rules win).
std::vector<quant::RoundingMethod> methods_needed(const QuantizeArgs& a, const quant::PlanOptions& options) {
  std::vector<quant::RoundingMethod> out = parse_method_list(a.method);
  if (out.size() > 1)
    fail(ErrorKind::kUsage, "--method {}: a list of methods goes with a budget (--target-bpw, --max-bytes, "
         "--smaller-than), which chooses one per module", a.method);
  const quant::QuantPlan plan = resolved_plan(a.input, options);
  for (const auto& t : plan.tensors)
    if (t.quant && t.method && !contains(out, *t.method)) out.push_back(*t.method);
  return out;
}

// The methods' statistics: recorded now on --calibration, or read from --stats. `methods` holds
// --method's and those a plan file names for its modules.
quant::RoundingOptions rounding_options(const QuantizeArgs& a, const std::vector<quant::RoundingMethod>& methods,
                                        const quant::PlanOptions& plan, ThreadPool& pool) {
  quant::RoundingOptions r;
  r.method = methods.front();
  r.gptq = {a.damp, a.act_order};
  r.delta_weight = a.delta_weight;
  r.vocab_prior = a.vocab_prior;
  if (!quant::any_calibrated(methods)) {
    if (!a.stats.empty() || a.act_order || !a.calibration.empty() || a.sequential)
      fail(ErrorKind::kUsage, "--calibration, --stats, --act-order and --sequential go with --method gptq|delta (or a "
           "plan whose modules name one), or --calibration with a budget");
    return r;
  }
  // Who asks for the method: --method, or the plan's per-module entries.
  const auto who = [&](quant::RoundingMethod m) {
    return m == r.method ? fmt::format("--method {}", a.method)
                         : fmt::format("{} (its modules' \"method\": \"{}\")", a.plan_file, quant::rounding_method_name(m));
  };
  const quant::RoundingMethod first_calibrated = r.method != quant::RoundingMethod::kRtn ? r.method : methods[1];
  if (a.calibration.empty() == a.stats.empty())
    fail(ErrorKind::kUsage, "{} needs the inputs' statistics: --calibration SUITE.jsonl or --stats FILE (one of them)",
         who(first_calibrated));
  if (contains(methods, quant::RoundingMethod::kDelta)) {
    if (a.base.empty() == a.adapter.empty())
      fail(ErrorKind::kUsage, "{} needs the fine-tune's change: --base BASE (the model it started from) or --adapter A "
           "(its LoRA adapter), one of them", who(quant::RoundingMethod::kDelta));
    analysis::set_delta_source(r, a.input, a.base, a.adapter);
  } else if (!a.base.empty() || !a.adapter.empty()) {
    fail(ErrorKind::kUsage, "--base and --adapter go with --method delta (or with a budget)");
  }
  if (a.sequential && a.calibration.empty())
    fail(ErrorKind::kUsage, "--sequential records its statistics on --calibration (with the earlier modules rounded); "
         "a --stats file was recorded on the float model");
  analysis::CalibrationOptions c;
  c.model_dir = a.input;
  c.suite_path = a.calibration;
  c.tools_path = a.tools;
  c.max_tokens = a.calibration_tokens;
  c.second_moments = true;
  c.show_progress = !a.quiet && !a.json && Progress::stderr_is_terminal();
  if (a.sequential) return analysis::with_sequential_statistics(c, plan, r, pool);
  analysis::CalibrationStats stats = a.stats.empty() ? analysis::calibrate(c, pool) : analysis::read_stats(a.stats);
  if (!a.stats.empty()) analysis::check_stats_match(stats, io::load_model_config(a.input), a.stats);
  if (!analysis::take_rounding_statistics(stats, r))
    fail_input("{}: no second moments in the statistics (record them with `quantlab calibrate --second-moments`)",
               a.stats.empty() ? a.calibration : a.stats);
  analysis::add_vocabulary_prior(r, a.input, pool);
  return r;
}

// With a budget: the settings of the methods the allocation chooses from (their statistics come from
// the allocation's own calibration).
quant::RoundingOptions budget_rounding(const QuantizeArgs& a, const std::vector<quant::RoundingMethod>& methods) {
  quant::RoundingOptions r;
  r.gptq = {a.damp, a.act_order};
  r.delta_weight = a.delta_weight;
  r.vocab_prior = a.vocab_prior;
  if (!a.stats.empty())
    fail(ErrorKind::kUsage, "a budget records its statistics on --calibration; --stats does not combine with it");
  if (a.act_order && !quant::any_calibrated(methods)) fail(ErrorKind::kUsage, "--stats and --act-order go with --method gptq|delta");
  if (a.sequential && !quant::any_calibrated(methods))
    fail(ErrorKind::kUsage, "--sequential goes with --method gptq|delta (a list naming one, with a budget)");
  if (contains(methods, quant::RoundingMethod::kDelta)) {
    if (a.base.empty()) fail(ErrorKind::kUsage, "--method delta needs --base BASE, the model the fine-tune started from");
    analysis::set_delta_source(r, a.input, a.base, a.adapter);
  }
  return r;
}

// calibrate → sensitivity → allocate → quantize, the plan beside the model.
void run_allocated_quantize(const QuantizeArgs& a) {
  if (!a.recipe.empty() || !a.plan_file.empty() || !a.overrides.empty())
    fail(ErrorKind::kUsage, "a budget (--target-bpw, --max-bytes, --smaller-than) chooses every module's width; "
         "it does not combine with --recipe, --plan or --override");
  analysis::MixedQuantizeOptions o;
  o.fused_dir = a.input;
  o.out_dir = a.output;
  o.suite_path = a.calibration;
  o.tools_path = a.tools;
  o.base_dir = a.base;
  o.adapter_dir = a.adapter;
  if (a.target_bpw != 0) o.budget.target_bpw = a.target_bpw;
  if (a.max_bytes != 0) o.budget.max_bytes = a.max_bytes;
  if (!a.smaller_than.empty()) o.budget.smaller_than = analysis::parse_bits_group(a.smaller_than, "--smaller-than");
  o.budget.by_pct = a.by;
  if (!a.objective.empty()) o.objective = analysis::parse_objective(a.objective);
  o.bits = parse_bit_widths(a.candidates, "--candidates");
  o.group_sizes = {a.group_size};
  o.dtype = parse_dtype_flag(a.dtype);
  o.overwrite = a.overwrite;
  o.measure_gains = !a.no_gains;
  o.max_tokens = a.calibration_tokens;
  o.show_progress = !a.quiet && !a.json && Progress::stderr_is_terminal();
  // Every width is measured with each method's own rounding, and the allocation picks a (width, method)
  // per module (docs/rounding.md, "Budgets with methods").
  o.methods = parse_method_list(a.method);
  o.rounding = budget_rounding(a, o.methods);
  o.sequential = a.sequential;
  ThreadPool pool(a.threads);
  const analysis::MixedQuantizeResult r = analysis::quantize_to_budget(o, pool);
  if (a.json) {
    fmt::print("{}\n", nlohmann::ordered_json{{"output", a.output}, {"budget", r.budget},
                                              {"tensor_bytes", r.allocation.bytes},
                                              {"bits_per_weight", r.allocation.bits_per_weight()},
                                              {"predicted_error", r.allocation.error},
                                              {"method", a.method},
                                              {"seconds", r.report.seconds}}.dump(2));
    return;
  }
  fmt::print("quantized {} -> {} within {}: {:.3f} bits per weight ({}), plan in {}/quantlab_plan.json\n", a.input,
             a.output, r.budget, r.allocation.bits_per_weight(), human_bytes(r.allocation.bytes), a.output);
}

void run_quantize(const QuantizeArgs& a) {
  if (wants_allocation(a)) return run_allocated_quantize(a);
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
  o.uncached_writes = !a.cached_writes;
  ThreadPool pool(a.threads);
  if (std::filesystem::exists(a.output) && !a.overwrite)  // before any calibration's forward passes
    fail(ErrorKind::kUsage, "{} exists; pass --overwrite to replace it", a.output);
  o.rounding = rounding_options(a, methods_needed(a, o.plan), o.plan, pool);
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
                                {"shards", r.shards},         {"method", a.method},
                                {"gptq_tensors", r.gptq_tensors}, {"gptq_factorisations", r.gptq_factorisations}};
    fmt::print("{}\n", j.dump(2));
    return;
  }
  const std::string setting = o.write_plan_file
                                  ? fmt::format("per module (plan in {}/quantlab_plan.json)", a.output)
                                  : fmt::format("at {} bits, group {}", a.bits, a.group_size);
  fmt::print("quantized {} -> {}: {} of {} tensors {} ({} -> {}), {:.2f} s, {:.2f} GB/s\n", a.input, a.output,
             quantized, r.plan.tensors.size(), setting, human_bytes(r.input_bytes), human_bytes(r.output_bytes),
             r.seconds, gbps);
  if (r.gptq_tensors > 0)
    fmt::print("rounding: {} on {} tensors, {} factorisations (the rest to nearest: embeddings, modules no "
               "calibration input reached)\n", a.method != "rtn" ? a.method : "the plan's methods", r.gptq_tensors,
               r.gptq_factorisations);
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
  cmd->add_option("--target-bpw", args->target_bpw,
                  "Budget in bits per weight: calibrate on --calibration, measure each module's sensitivity, and "
                  "allocate widths per module (docs/mixed-precision.md)");
  cmd->add_option("--max-bytes", args->max_bytes, "Budget in tensor bytes (instead of --target-bpw)");
  cmd->add_option("--smaller-than", args->smaller_than, "Budget: BITS:GROUP uniform size less --by percent");
  cmd->add_option("--by", args->by, "Percent for --smaller-than");
  cmd->add_option("--calibration", args->calibration, "Query suite (JSONL) the statistics are recorded on")
      ->check(CLI::ExistingFile);
  cmd->add_option("--tools", args->tools, "Tool schemas rendered into the calibration prompts")
      ->check(CLI::ExistingFile);
  cmd->add_option("--base", args->base, "Base model: records the fine-tune error too (and allows --objective finetune|both)");
  cmd->add_option("--adapter", args->adapter, "LoRA adapter, with --base, for the fine-tune's delta");
  cmd->add_option("--objective", args->objective, "output (default), finetune or both");
  cmd->add_option("--candidates", args->candidates, "Widths the allocation chooses from")->capture_default_str();
  add_dtype_option(cmd, &args->dtype, "Cast float tensors to this dtype first (default: config's dtype)");
  cmd->add_option("--max-shard-size", args->max_shard, "Largest output shard (e.g. 5GiB, 500MB)");
  cmd->add_option("--method", args->method,
                  "How codes are chosen: rtn (round to nearest, MLX's rule, default), gptq (error-compensated on "
                  "--calibration/--stats inputs) or delta (gptq aimed at keeping the fine-tune's change: fused − --base, "
                  "or --adapter's); with a budget, a list (rtn,gptq,delta) the allocation chooses from per module; "
                  "docs/rounding.md")
      ->check(method_list_check())
      ->capture_default_str();
  cmd->add_option("--stats", args->stats, "gptq/delta: statistics from `quantlab calibrate --second-moments`")
      ->check(CLI::ExistingFile);
  cmd->add_option("--damp", args->damp, "gptq/delta: damping, a fraction of the mean diagonal of E[x xᵀ]")
      ->check(CLI::Range(0.0, 10.0))
      ->capture_default_str();
  cmd->add_flag("--act-order", args->act_order, "gptq/delta: round columns in decreasing input energy (static groups)");
  add_vocab_prior_option(cmd, &args->vocab_prior);
  cmd->add_flag("--sequential", args->sequential,
                "gptq/delta with --calibration: record each module's statistics with every module before it "
                "already rounded (layer by layer, GPTQ's sequential mode; about five forward passes; docs/rounding.md)");
  cmd->add_option("--delta-weight", args->delta_weight,
                  "delta: weight of the fine-tune's input directions against the output error (docs/rounding.md)")
      ->check(CLI::Range(0.0, 1000.0))
      ->capture_default_str();
  cmd->add_option("--calibration-tokens", args->calibration_tokens,
                  "Reply tokens generated per prompt when calibrating (gptq/delta, budgets)")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--kernel", args->kernel, "simd (default) or scalar (the reference, for comparisons)")
      ->check(CLI::IsMember({"simd", "scalar"}));
  add_threads_option(cmd, &args->threads);
  cmd->add_flag("--no-gains", args->no_gains, "With a budget: skip the measured module gains (one forward pass over the "
                                            "calibration suite per tensor) and allocate on the proxy alone");
  cmd->add_flag("--cached-writes", args->cached_writes,
                "Write the output through the page cache (default: past it, with O_DIRECT where the file "
                "system allows; docs/BENCHMARKS.md)");
  cmd->add_flag("--overwrite", args->overwrite, "Replace OUTPUT if it exists");
  cmd->add_flag("--json", args->json, "Print a JSON summary");
  cmd->add_flag("--quiet", args->quiet, "No progress bar");
  cmd->callback([args] { run_quantize(*args); });
}

}  // namespace quantlab::cli
