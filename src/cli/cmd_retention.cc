// quantlab retention --base BASE (--adapter A | --fused F) [--bits 2,3,4,5,6,7,8] [--group-size G]
//                    [--suite Q [--tools T] [--max-tokens N]] [--keep-models] [--json] --out DIR
// Writes DIR/retention.json and DIR/retention.md (atomically) and prints the summary (or the JSON).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "analysis/output_retention.h"
#include "analysis/retention_report.h"
#include "analysis/weight_retention.h"
#include "cli/bit_widths.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "io/output_dir.h"
#include "quant/fuse.h"

namespace quantlab::cli {

namespace {

namespace fs = std::filesystem;

struct RetentionArgs {
  std::string base, adapter, fused, bits = "2,3,4,5,6,7,8", suite, tools, out;
  int group_size = 64;
  size_t max_tokens = 32, threads = 0;
  bool keep_models = false, overwrite = false, json = false, quiet = false;
};

void print_summary(const analysis::WeightRetention& w, const analysis::OutputRetention* o, const std::string& out) {
  fmt::print("{:>5}  {:>7}  {:>8}  {:>8}  {:>9}", "bits", "cosine", "kept", "erased", "ΔW/step");
  if (o) fmt::print("  {:>10}  {:>8}", "KL(reply)", "retained");
  fmt::print("\n");
  for (size_t i = 0; i < w.bits.size(); ++i) {
    const auto& s = w.overall[i];
    fmt::print("{:>5}  {:>7.3f}  {:>7.1f}%  {:>7.1f}%  {:>9.3f}", w.bits[i], s.cosine(), 100 * s.kept(),
               100 * s.erased_share(), s.delta_in_steps());
    if (o) fmt::print("  {:>10.4f}  {:>7.1f}%", o->quantized[i].kl_reply, 100 * o->quantized[i].retention_reply);
    fmt::print("\n");
  }
  const auto lost = analysis::layers_lost_first(w);
  if (!lost.empty() && lost.front().loss_bits > 0)
    fmt::print("lost first: {} (cosine below 0.707 from {} bits down)\n",
               lost.front().layer < 0 ? "embeddings/head" : fmt::format("layer {}", lost.front().layer),
               lost.front().loss_bits);
  if (o)
    fmt::print("base: KL(reply) {:.4f}; weights vs outputs agree across widths: Spearman {:.3f}\n", o->base.kl_reply,
               analysis::weight_output_agreement(w, *o));
  fmt::print("report: {}/retention.md, {}/retention.json\n", out, out);
}

void run_retention(const RetentionArgs& a, ThreadPool& pool) {
  if (a.adapter.empty() == a.fused.empty()) fail(ErrorKind::kUsage, "give exactly one of --adapter and --fused");
  if (a.tools.size() && a.suite.empty()) fail(ErrorKind::kUsage, "--tools goes with --suite");
  const bool progress = !a.quiet && !a.json;
  analysis::WeightRetentionOptions wo;
  wo.base_dir = a.base;
  wo.adapter_dir = a.adapter;
  wo.fused_dir = a.fused;
  wo.bits = parse_bit_widths(a.bits);
  wo.group_size = a.group_size;
  wo.show_progress = progress;
  io::check_output_not_input(a.base, a.out);
  io::AtomicOutputDir out(a.out, a.overwrite);
  const analysis::WeightRetention w = analysis::analyze_weight_retention(wo, pool);

  std::optional<analysis::OutputRetention> o;
  if (!a.suite.empty()) {
    analysis::OutputRetentionOptions oo;
    oo.base_dir = a.base;
    oo.fused_dir = a.fused;
    if (!a.adapter.empty()) {  // the outputs need a fused model to run: fuse it into the work area
      oo.fused_dir = out.file("fused");
      quant::FuseOptions fo;
      fo.show_progress = progress;
      quant::fuse_adapter(a.base, a.adapter, oo.fused_dir, fo, pool);
    }
    oo.suite_path = a.suite;
    oo.tools_path = a.tools;
    oo.bits = wo.bits;
    oo.group_size = a.group_size;
    oo.max_tokens = a.max_tokens;
    oo.work_dir = out.file("models");
    oo.keep_models = a.keep_models;
    oo.show_progress = progress;
    o = analysis::analyze_output_retention(oo, pool);
    if (!a.keep_models) {
      fs::remove_all(out.file("models"));
      if (!a.adapter.empty()) fs::remove_all(oo.fused_dir);
    }
  }
  const analysis::RetentionInputs in{a.base, a.adapter.empty() ? a.fused : a.adapter};
  const auto json = analysis::retention_json(in, w, o ? &*o : nullptr);
  std::ofstream(out.file("retention.json")) << json.dump(2) << "\n";
  std::ofstream(out.file("retention.md")) << analysis::retention_markdown(in, w, o ? &*o : nullptr);
  out.commit();
  if (a.json) fmt::print("{}\n", json.dump(2));
  else print_summary(w, o ? &*o : nullptr, a.out);
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
