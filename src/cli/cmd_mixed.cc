// quantlab calibrate MODEL (--suite Q [--tools T] | --text FILE) --out stats.safetensors
// quantlab sensitivity FUSED [--base BASE [--adapter A]] --stats stats.safetensors
//                      [--candidates 2,3,4,5,6,8] [--group-size 32,64,128] [--suite Q [--tools T]]
//                      [--method rtn,gptq,delta [--damp D] [--act-order] [--delta-weight L]] --out sens.json
// quantlab allocate sens.json (--target-bpw X | --max-bytes N | --smaller-than BITS:GROUP --by PCT)
//                   [--objective finetune|output|both] [--method LIST] --out plan.json
// The mixed-precision pipeline step by step (docs/mixed-precision.md); `quantize --target-bpw` runs it
// in one command.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "analysis/allocation.h"
#include "analysis/calibration.h"
#include "analysis/mixed_quantize.h"
#include "analysis/module_gain.h"
#include "analysis/sensitivity.h"
#include "cli/bit_widths.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "io/output_dir.h"

namespace quantlab::cli {

namespace {

struct CalibrateArgs {
  std::string model, suite, tools, text, out;
  size_t max_tokens = 64, threads = 0;
  bool quiet = false, second_moments = false;
  std::string expert_statistics = "auto";
};

void run_calibrate(const CalibrateArgs& a) {
  analysis::CalibrationOptions o;
  o.model_dir = a.model;
  o.suite_path = a.suite;
  o.tools_path = a.tools;
  o.text_path = a.text;
  o.max_tokens = a.max_tokens;
  o.second_moments = a.second_moments;
  using Mode = analysis::CalibrationOptions::ExpertStatistics;
  o.expert_statistics = a.expert_statistics == "inputs" ? Mode::kInputs
                        : a.expert_statistics == "moments" ? Mode::kMoments : Mode::kAuto;
  if (a.expert_statistics != "auto" && !a.second_moments)
    fail(ErrorKind::kUsage, "--expert-statistics goes with --second-moments");
  o.show_progress = !a.quiet && Progress::stderr_is_terminal();
  ThreadPool pool(a.threads);
  const analysis::CalibrationStats s = analysis::calibrate(o, pool);
  analysis::write_stats(s, a.out);
  fmt::print("calibrated {} on {} tokens: statistics of {} modules -> {}\n", a.model, s.tokens, s.modules.size(), a.out);
}

struct SensitivityArgs {
  std::string fused, base, adapter, stats, candidates = "2,3,4,5,6,8", out, suite, tools, method = "rtn", held_out;
  std::vector<int> groups = {64};
  size_t threads = 0, gain_queries = 0, gain_tokens = 16;
  int probe_bits = 3;
  double damp = 0.1, delta_weight = 1.0, vocab_prior = 0.0;
  bool quiet = false, act_order = false;
};

void run_sensitivity(const SensitivityArgs& a) {
  analysis::SensitivityOptions o;
  o.fused_dir = a.fused;
  o.base_dir = a.base;
  o.adapter_dir = a.adapter;
  o.stats_path = a.stats;
  o.bits = parse_bit_widths(a.candidates, "--candidates");
  o.group_sizes = a.groups;
  o.methods = parse_method_list(a.method);
  o.gptq = {a.damp, a.act_order};
  o.vocab_prior = a.vocab_prior;
  o.delta_weight = a.delta_weight;
  o.held_out_stats_path = a.held_out;
  o.show_progress = !a.quiet && Progress::stderr_is_terminal();
  ThreadPool pool(a.threads);
  analysis::Sensitivity s = analysis::analyze_sensitivity(o, pool);
  if (!a.suite.empty()) {
    analysis::GainOptions g;
    g.fused_dir = a.fused;
    g.suite_path = a.suite;
    g.tools_path = a.tools;
    g.max_queries = a.gain_queries;
    g.max_tokens = a.gain_tokens;
    g.probe_bits = a.probe_bits;
    g.show_progress = o.show_progress;
    analysis::measure_gains(g, s, pool);
  }
  io::write_file_atomically(a.out, analysis::sensitivity_json(s).dump(2) + "\n");
  fmt::print("sensitivity of {} tensors ({}{}{}) -> {}\n", s.tensors.size(),
             s.has_base ? "output and fine-tune error" : "output error; no base, so no fine-tune error",
             s.second_moments ? fmt::format("; methods {}, errors under E[x xᵀ]", a.method) : "",
             s.has_gains ? "; measured gains" : "", a.out);
}

struct AllocateArgs {
  std::string sensitivity, smaller_than, objective, out, method;
  double target_bpw = 0, by = 0;
  uint64_t max_bytes = 0;
  bool json = false;
};

void run_allocate(const AllocateArgs& a) {
  const analysis::Sensitivity s = analysis::read_sensitivity(a.sensitivity);
  analysis::BudgetSpec spec;
  if (a.target_bpw != 0) spec.target_bpw = a.target_bpw;
  if (a.max_bytes != 0) spec.max_bytes = a.max_bytes;
  if (!a.smaller_than.empty()) spec.smaller_than = analysis::parse_bits_group(a.smaller_than, "--smaller-than");
  spec.by_pct = a.by;
  std::string budget_text;
  const uint64_t budget = analysis::resolve_budget(s, spec, &budget_text);
  // Output is the default: measured on the bundled fused models it keeps more of the fine-tune (lower
  // KL, higher retention) than aiming at the fine-tune's projection (docs/mixed-precision.md).
  const analysis::Objective objective =
      a.objective.empty() ? analysis::Objective::kOutput : analysis::parse_objective(a.objective);
  const std::vector<quant::RoundingMethod> methods =
      a.method.empty() ? std::vector<quant::RoundingMethod>{} : parse_method_list(a.method);
  const analysis::Allocation alloc = analysis::allocate(s, budget, objective, methods);
  const auto plan = analysis::allocation_plan_json(s, alloc, objective, budget_text);
  io::write_file_atomically(a.out, plan.dump(2) + "\n");
  if (a.json) {
    fmt::print("{}\n", plan.dump(2));
    return;
  }
  fmt::print("allocated {} tensors within {}: {} bytes, {:.3f} bits per weight, {} error {:.6g} -> {}\n",
             s.tensors.size(), budget_text, alloc.bytes, alloc.bits_per_weight(), analysis::objective_name(objective),
             alloc.error, a.out);
}

}  // namespace

void register_calibrate(CLI::App& app) {
  auto a = std::make_shared<CalibrateArgs>();
  auto* cmd = app.add_subcommand("calibrate", "Record the inputs' mean x² per channel of every Linear on a suite or text");
  cmd->add_option("model", a->model, "Model directory (float or quantized)")->required();
  cmd->add_option("--suite", a->suite, "Query suite (JSONL): prompts and the model's own greedy replies")
      ->check(CLI::ExistingFile);
  cmd->add_option("--tools", a->tools, "Tool schemas (JSON) rendered into the prompts")->check(CLI::ExistingFile);
  cmd->add_option("--text", a->text, "Plain text file run in chunks")->check(CLI::ExistingFile);
  cmd->add_option("--max-tokens", a->max_tokens, "Reply tokens per prompt")->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--out", a->out, "Statistics file (.safetensors)")->required();
  cmd->add_flag("--second-moments", a->second_moments,
                "Also record E[x xᵀ] per Linear (cols² per module and expert), for `quantize --method gptq|delta "
                "--stats`");
  cmd->add_option("--expert-statistics", a->expert_statistics,
                  "With --second-moments, for MoE experts: 'moments' (E[x xᵀ] per expert), 'inputs' (the routed "
                  "inputs, for GPTQ in low-rank form: memory grows with tokens, not experts × cols²) or 'auto' "
                  "(inputs when a module's matrices would exceed 256 MiB)")
      ->check(CLI::IsMember({"auto", "moments", "inputs"}))
      ->capture_default_str();
  add_threads_option(cmd, &a->threads);
  cmd->add_flag("--quiet", a->quiet, "No progress bar");
  cmd->callback([a] { run_calibrate(*a); });
}

void register_sensitivity(CLI::App& app) {
  auto a = std::make_shared<SensitivityArgs>();
  auto* cmd = app.add_subcommand("sensitivity", "Each tensor's weighted rounding error at each candidate width");
  cmd->add_option("fused", a->fused, "Fused (fine-tuned) float model directory")->required();
  cmd->add_option("--base", a->base, "Base model: adds the fine-tune error (the rounding that cancels ΔW)");
  cmd->add_option("--adapter", a->adapter, "LoRA adapter applied to --base instead of reading the fused model's delta");
  cmd->add_option("--stats", a->stats, "Statistics from `quantlab calibrate`")->required()->check(CLI::ExistingFile);
  cmd->add_option("--candidates", a->candidates, "Bit widths to evaluate, comma-separated")->capture_default_str();
  cmd->add_option("--group-size", a->groups, "Group sizes to evaluate, comma-separated")->delimiter(',')
      ->check(group_size_check());
  cmd->add_option("--suite", a->suite, "Query suite (JSONL): measure each module's gain (KL per unit of proxy error) "
                                       "by quantizing it alone; allocation then minimises the predicted KL")
      ->check(CLI::ExistingFile);
  cmd->add_option("--tools", a->tools, "Tool schemas (JSON) rendered into the suite's prompts")->check(CLI::ExistingFile);
  cmd->add_option("--gain-queries", a->gain_queries, "Queries of the suite used for the gains (0: all)")
      ->capture_default_str();
  cmd->add_option("--gain-tokens", a->gain_tokens, "Reference reply tokens per query for the gains")
      ->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--probe-bits", a->probe_bits, "Width each module is probed at (the lowest candidate >= it)")
      ->check(CLI::Range(2, 8))->capture_default_str();
  cmd->add_option("--method", a->method,
                  "Rounding methods measured, comma-separated (rtn, gptq, delta): each width rounded with each, "
                  "every error under E[x xᵀ] (needs `calibrate --second-moments`; delta needs --base); "
                  "docs/rounding.md")
      ->check(method_list_check())
      ->capture_default_str();
  cmd->add_option("--held-out-stats", a->held_out,
                  "With --method: measure every error under this statistics file's E[x xᵀ] (other inputs than "
                  "--stats, which the rounding is fitted to)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--damp", a->damp, "gptq/delta: damping, a fraction of the mean diagonal of E[x xᵀ]")
      ->check(CLI::Range(0.0, 10.0))
      ->capture_default_str();
  cmd->add_flag("--act-order", a->act_order, "gptq/delta: round columns in decreasing input energy (static groups)");
  add_vocab_prior_option(cmd, &a->vocab_prior);
  cmd->add_option("--delta-weight", a->delta_weight, "delta: weight of the fine-tune's input directions (docs/rounding.md)")
      ->check(CLI::Range(0.0, 1000.0))
      ->capture_default_str();
  cmd->add_option("--out", a->out, "Sensitivity file (JSON)")->required();
  add_threads_option(cmd, &a->threads);
  cmd->add_flag("--quiet", a->quiet, "No progress bar");
  cmd->callback([a] { run_sensitivity(*a); });
}

void register_allocate(CLI::App& app) {
  auto a = std::make_shared<AllocateArgs>();
  auto* cmd = app.add_subcommand("allocate", "Choose each tensor's width to minimise the error within a size budget");
  cmd->add_option("sensitivity", a->sensitivity, "Sensitivity file from `quantlab sensitivity`")->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--target-bpw", a->target_bpw, "Budget: bits per weight over all tensors");
  cmd->add_option("--max-bytes", a->max_bytes, "Budget: tensor bytes");
  cmd->add_option("--smaller-than", a->smaller_than, "Budget relative to a uniform BITS:GROUP (with --by)");
  cmd->add_option("--by", a->by, "Percent smaller than --smaller-than");
  cmd->add_option("--objective", a->objective, "output (default), finetune or both");
  cmd->add_option("--method", a->method,
                  "Choose only among candidates rounded with these methods (comma-separated; default: every method "
                  "the sensitivity file measured)")
      ->check(method_list_check());
  cmd->add_option("--out", a->out, "Plan file (quantlab.plan/1) for `quantize --plan`")->required();
  cmd->add_flag("--json", a->json, "Print the plan");
  cmd->callback([a] { run_allocate(*a); });
}

}  // namespace quantlab::cli
