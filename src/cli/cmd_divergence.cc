// quantlab divergence REFERENCE --base BASE --suite Q [--tools T] --model NAME=DIR ... [--model-compute NAME=int8] [--max-tokens N] [--json]
// How far each model's outputs are from the fused float model's on the suite (KL teacher-forced on the
// fused model's replies, retention against the base, flipped decisions): the output-side check of any
// set of quantized files (mixed plans, recipes, other tools'), beside `retention`, which quantizes
// uniform widths itself.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <set>

#include "analysis/output_retention.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"

namespace quantlab::cli {

namespace {

struct DivergenceArgs {
  std::string fused, base, suite, tools;
  std::vector<std::string> models, model_compute;
  kernels::Compute fused_compute = kernels::Compute::kExact;
  size_t max_tokens = 32, threads = 0;
  bool json = false;
};

nlohmann::ordered_json divergence_json(const analysis::ModelDivergence& d) {
  return {{"name", d.label},           {"kl_first", d.kl_first},   {"kl_reply", d.kl_reply},
          {"retention_first", d.retention_first}, {"retention_reply", d.retention_reply},
          {"top1_agreement", d.top1_agreement}, {"flipped", d.flipped},      {"correct", d.correct}};
}

void run_divergence(const DivergenceArgs& a) {
  std::vector<std::pair<std::string, std::string>> models;
  for (const std::string& m : a.models) {
    NamedDir named = parse_named_dir(m);
    models.emplace_back(std::move(named.name), std::move(named.dir));
  }
  analysis::OutputRetentionOptions o;
  o.fused_compute = a.fused_compute;
  std::set<std::string> names;
  for (const auto& m : models) names.insert(m.first);
  o.model_compute = parse_model_compute(a.model_compute, names);
  o.base_dir = a.base;
  o.fused_dir = a.fused;
  o.suite_path = a.suite;
  o.tools_path = a.tools;
  o.max_tokens = a.max_tokens;
  o.show_progress = !a.json && Progress::stderr_is_terminal();
  ThreadPool pool(a.threads);
  const analysis::OutputRetention r = analysis::compare_outputs(o, models, pool);
  if (a.json) {
    nlohmann::ordered_json j = {{"queries", r.queries}, {"fused_correct", r.fused_correct},
                                {"base", divergence_json(r.base)}, {"models", nlohmann::ordered_json::array()}};
    for (const auto& d : r.quantized) j["models"].push_back(divergence_json(d));
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("{:<16} {:>10} {:>10} {:>10} {:>7} {:>8} {:>8}\n", "model", "KL first", "KL reply", "retained", "top-1",
             "flipped", "correct");
  for (const auto* d : {&r.base})
    fmt::print("{:<16} {:>10.5f} {:>10.5f} {:>10} {:>6.1f}% {:>8} {:>8}\n", "base", d->kl_first, d->kl_reply, "-",
               100 * d->top1_agreement, d->flipped, d->correct);
  for (const auto& d : r.quantized)
    fmt::print("{:<16} {:>10.5f} {:>10.5f} {:>9.1f}% {:>6.1f}% {:>8} {:>8}\n", d.label, d.kl_first, d.kl_reply,
               100 * d.retention_reply, 100 * d.top1_agreement, d.flipped, d.correct);
  fmt::print("{} queries; the fused model decides {} of them as the suite expects\n", r.queries, r.fused_correct);
}

}  // namespace

void register_divergence(CLI::App& app) {
  auto a = std::make_shared<DivergenceArgs>();
  auto* cmd = app.add_subcommand("divergence", "KL of each model's outputs from the fused model's on a suite, and "
                                               "retention against the base");
  cmd->add_option("fused", a->fused, "Reference model directory: the fused float model, or any model (e.g. a "
                                     "quantized one, to measure what --model-compute int8 costs on it)")->required();
  cmd->add_option("--base", a->base, "Base float model directory")->required();
  cmd->add_option("--suite", a->suite, "Query suite (JSONL)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--tools", a->tools, "Tool schemas (JSON) rendered into the prompts")->check(CLI::ExistingFile);
  cmd->add_option("--model", a->models, "NAME=DIR, or a bare DIR named after its last component (repeat)")->required()->allow_extra_args(false);
  cmd->add_option("--max-tokens", a->max_tokens, "Length of the fused model's reference replies")
      ->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option_function<std::string>(
         "--fused-compute", [a](const std::string& c) { a->fused_compute = kernels::parse_compute(c); },
         "Arithmetic of the reference model's quantized matrices: exact (default), int8 or bf16")
      ->check(CLI::IsMember({"exact", "int8", "bf16"}));
  cmd->add_option("--model-compute", a->model_compute,
                  "NAME=exact|int8|bf16: the arithmetic a --model runs with (repeat; default exact; docs/compute-paths.md)");
  add_threads_option(cmd, &a->threads);
  cmd->add_flag("--json", a->json, "Machine-readable output");
  cmd->callback([a] { run_divergence(*a); });
}

}  // namespace quantlab::cli
