// quantlab retention --base BASE (--adapter A | --fused F) [--bits 2,3,4,5,6,7,8] [--group-size G]
//                    [--suite Q [--tools T] [--max-tokens N]] [--method gptq,delta [--calibration Q]
//                    [--calibration-tokens N] [--sequential]] [--keep-models] [--json] --out DIR
// Writes DIR/retention.json and DIR/retention.md (atomically) and prints the summary (or the JSON).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "analysis/retention.h"
#include "cli/bit_widths.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/thread_pool.h"

namespace quantlab::cli {

namespace {

struct RetentionArgs {
  std::string base, adapter, fused, bits = "2,3,4,5,6,7,8", suite, tools, out, calibration;
  std::vector<std::string> methods;
  int group_size = 64;
  size_t max_tokens = 32, threads = 0, calibration_tokens = 64;
  bool keep_models = false, overwrite = false, json = false, quiet = false, sequential = false;
};

void run_retention(const RetentionArgs& a, ThreadPool& pool) {
  analysis::RetentionOptions o;
  o.base_dir = a.base;
  o.adapter_dir = a.adapter;
  o.fused_dir = a.fused;
  o.bits = parse_bit_widths(a.bits);
  o.group_size = a.group_size;
  o.suite_path = a.suite;
  o.tools_path = a.tools;
  o.max_tokens = a.max_tokens;
  o.out_dir = a.out;
  o.methods = a.methods;
  o.calibration_suite = a.calibration;
  o.calibration_tokens = a.calibration_tokens;
  o.sequential = a.sequential;
  o.keep_models = a.keep_models;
  o.overwrite = a.overwrite;
  o.show_progress = !a.quiet && !a.json;
  const analysis::RetentionRun run = analysis::run_retention(o, pool);
  if (a.json) fmt::print("{}\n", run.json.dump(2));
  else fmt::print("{}", analysis::retention_summary_text(run, a.out));
}

}  // namespace

void register_retention(CLI::App& app) {
  auto a = std::make_shared<RetentionArgs>();
  auto* cmd = app.add_subcommand("retention", "Measure how much of a LoRA fine-tune each bit width keeps "
                                              "(from the weights; with --suite, from the outputs too)");
  cmd->add_option("--base", a->base, "Base float model directory")->required();
  auto* adapter = cmd->add_option("--adapter", a->adapter, "LoRA adapter directory (PEFT or mlx-lm), fused in memory");
  auto* fused = cmd->add_option("--fused", a->fused, "Fused float model directory");
  adapter->excludes(fused);
  cmd->add_option("--bits", a->bits, "Bit widths to analyse, comma-separated")->capture_default_str();
  cmd->add_option("--group-size", a->group_size, "Quantization group size (32, 64, 128)")->capture_default_str();
  cmd->add_option("--suite", a->suite, "Query suite (JSONL): also measure retention from the model's outputs");
  cmd->add_option("--tools", a->tools, "Tool schemas (JSON) rendered into the prompts");
  cmd->add_option("--max-tokens", a->max_tokens, "Length of the fused model's reference replies")
      ->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--method", a->methods,
                  "Rounding methods to measure beside round-to-nearest, each at every width: gptq, delta "
                  "(docs/rounding.md)")
      ->delimiter(',');
  cmd->add_option("--calibration", a->calibration,
                  "Suite the gptq/delta statistics are calibrated on (default: --suite)");
  cmd->add_flag("--sequential", a->sequential,
                "gptq/delta: each width's statistics recorded with the modules before each already rounded, as "
                "`quantize --sequential` (reported as gptq+seq, delta+seq)");
  cmd->add_option("--calibration-tokens", a->calibration_tokens, "Reply tokens per calibration prompt")
      ->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--out", a->out, "Report directory (retention.json, retention.md)")->required();
  cmd->add_flag("--keep-models", a->keep_models, "Keep the quantized (and fused) models under OUT");
  cmd->add_flag("--overwrite", a->overwrite, "Replace OUT if it exists");
  add_threads_option(cmd, &a->threads);
  cmd->add_flag("--json", a->json, "Print the JSON report instead of the summary");
  cmd->add_flag("--quiet", a->quiet, "No progress bars");
  cmd->callback([a] {
    ThreadPool pool(a->threads);
    run_retention(*a, pool);
  });
}

}  // namespace quantlab::cli
