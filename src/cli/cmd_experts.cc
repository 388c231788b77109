// quantlab experts MODEL (--suite Q [--tools T] | --text FILE) [--compare NAME=DIR ...] --out DIR
//                  [--max-tokens N] [--overwrite] [--json]
// quantlab prune MODEL OUT --profile experts.json (--keep N | --keep-ratio R | --drop-unused)
//                [--by saliency|count] [--overwrite] [--json]
// Which experts a MoE model uses on the user's task, routing drift of other widths, and pruning the
// experts the task does not need (issue 16; docs/experts.md).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <nlohmann/json.hpp>

#include "analysis/expert_profile.h"
#include "analysis/expert_report.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/progress.h"
#include "io/output_dir.h"
#include "quant/prune.h"

namespace quantlab::cli {

namespace {

struct ExpertsArgs {
  std::string model, suite, tools, text, out;
  std::vector<std::string> compare;
  size_t max_tokens = 64, threads = 0;
  bool overwrite = false, json = false, quiet = false, study = false;
};

void run_experts(const ExpertsArgs& a) {
  analysis::ExpertProfileOptions o;
  o.model_dir = a.model;
  o.suite_path = a.suite;
  o.tools_path = a.tools;
  o.text_path = a.text;
  o.max_tokens = a.max_tokens;
  for (const std::string& c : a.compare) {
    const NamedDir named = parse_named_dir(c);
    o.compare.push_back({named.name, named.dir});
  }
  o.show_progress = !a.quiet && !a.json && Progress::stderr_is_terminal();
  io::check_output_not_input(a.model, a.out);
  io::AtomicOutputDir out(a.out, a.overwrite);  // refuses an existing DIR before the work starts
  ThreadPool pool(a.threads);
  if (a.study && a.suite.empty()) fail(ErrorKind::kUsage, "--study needs --suite (its decisions are scored)");
  const analysis::ExpertProfile p = analysis::profile_experts(o, pool);
  auto j = analysis::profile_json(p);
  std::string report = analysis::expert_report_markdown(p);
  if (a.study) {
    analysis::ExpertStudy study(a.model, a.suite, a.tools, a.max_tokens, pool);
    const analysis::SaliencyCheck check = analysis::check_saliency(p, study, 8, 20261206);
    j["study"] = analysis::saliency_check_json(check, study.full());
    report += analysis::saliency_check_markdown(p, check, study.full());
  }
  io::write_file_atomically(out.file("experts.json"), j.dump(1) + "\n");
  io::write_file_atomically(out.file("report.md"), report);
  io::write_file_atomically(out.file("heatmap.svg"), analysis::expert_heatmap_svg(p));
  out.commit();
  if (a.json) {
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("profiled {} tokens of {} queries over {} MoE layers: {} experts per layer used at most; {}/experts.json, "
             "report.md, heatmap.svg\n",
             p.tokens, p.queries, p.layers.size(), analysis::used_expert_count(p), a.out);
  for (const auto& c : p.compare)
    fmt::print("  {}: top-1 agreement {:.1f} %, Jaccard {:.3f} over {} tokens\n", c.name, 100 * c.mean_top1(),
               c.mean_jaccard(), c.tokens);
}

struct PruneArgs {
  std::string model, out, profile, by = "saliency";
  int64_t keep = -1;        // -1: not given
  double keep_ratio = -1;   // -1: not given
  bool drop_unused = false, overwrite = false, json = false;
};

size_t experts_to_keep(const PruneArgs& a, const analysis::ExpertProfile& p) {
  if (a.drop_unused) return std::max<size_t>(1, analysis::used_expert_count(p));
  if (a.keep_ratio != -1) {
    if (!(a.keep_ratio > 0 && a.keep_ratio <= 1)) fail(ErrorKind::kUsage, "--keep-ratio {} must be in (0, 1]", a.keep_ratio);
    return std::max<size_t>(1, static_cast<size_t>(std::lround(a.keep_ratio * static_cast<double>(p.experts))));
  }
  if (a.keep < 1 || a.keep > p.experts)
    fail(ErrorKind::kUsage, "--keep {}: choose between 1 and the {} experts the model has", a.keep, p.experts);
  return static_cast<size_t>(a.keep);
}

void run_prune(const PruneArgs& a) {
  if ((a.keep != -1) + (a.keep_ratio != -1) + a.drop_unused != 1)
    fail(ErrorKind::kUsage, "give exactly one of --keep N, --keep-ratio R and --drop-unused");
  const analysis::ExpertProfile p = analysis::read_profile(a.profile);
  analysis::check_profile_matches(p, a.profile, a.model);
  const size_t keep = experts_to_keep(a, p);
  // Unused experts are dropped by count: every expert a token went to ranks above every unused one.
  const auto by = a.drop_unused || a.by == "count" ? analysis::PruneRanking::kCount : analysis::PruneRanking::kSaliency;
  const quant::PruneReport r = quant::prune_experts(a.model, a.out, analysis::choose_experts(p, keep, by), {a.overwrite});
  if (a.json) {
    fmt::print("{}\n", nlohmann::ordered_json{{"output", a.out},
                                              {"experts_before", r.experts_before},
                                              {"experts_after", r.experts_after},
                                              {"experts_per_token", r.experts_per_token_after},
                                              {"tensor_bytes_before", r.tensor_bytes_before},
                                              {"tensor_bytes_after", r.tensor_bytes_after}}
                           .dump(2));
    return;
  }
  fmt::print("pruned {} -> {}: {} of {} experts kept in each of {} MoE layers (top-{}), tensors {:.1f} % smaller\n",
             a.model, a.out, r.experts_after, r.experts_before, r.moe_layers, r.experts_per_token_after,
             100.0 * (1.0 - double(r.tensor_bytes_after) / double(r.tensor_bytes_before)));
}

}  // namespace

void register_experts(CLI::App& app) {
  auto a = std::make_shared<ExpertsArgs>();
  auto* cmd = app.add_subcommand("experts", "Which MoE experts a suite uses, and how other models route the same tokens");
  cmd->add_option("model", a->model, "MoE model directory (the reference for --compare)")->required();
  cmd->add_option("--suite", a->suite, "Query suite (JSONL): prompts and the model's own greedy replies")
      ->check(CLI::ExistingFile);
  cmd->add_option("--tools", a->tools, "Tool schemas (JSON) rendered into the prompts")->check(CLI::ExistingFile);
  cmd->add_option("--text", a->text, "Plain text file run in chunks")->check(CLI::ExistingFile);
  cmd->add_option("--compare", a->compare, "NAME=DIR: routing agreement of another model on the same tokens");
  cmd->add_option("--max-tokens", a->max_tokens, "Reply tokens per prompt")->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--out", a->out, "Output directory: experts.json, report.md, heatmap.svg")->required();
  add_threads_option(cmd, &a->threads);
  cmd->add_flag("--study", a->study,
                "Also leave each expert out alone and prune half by saliency, at random and the most salient "
                "(KL and decision accuracy on the suite; one suite pass per expert)");
  cmd->add_flag("--overwrite", a->overwrite, "Replace --out if it exists");
  cmd->add_flag("--json", a->json, "Print experts.json on stdout too");
  cmd->add_flag("--quiet", a->quiet, "No progress bar");
  cmd->callback([a] { run_experts(*a); });
}

void register_prune(CLI::App& app) {
  auto a = std::make_shared<PruneArgs>();
  auto* cmd = app.add_subcommand("prune", "Drop MoE experts a profile says the task does not need");
  cmd->add_option("model", a->model, "MoE model directory (float or MLX-quantized)")->required();
  cmd->add_option("output", a->out, "Output directory")->required();
  cmd->add_option("--profile", a->profile, "experts.json from `quantlab experts` on this model")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--keep", a->keep, "Experts to keep in every MoE layer");
  cmd->add_option("--keep-ratio", a->keep_ratio, "Share of the experts to keep, e.g. 0.5");
  cmd->add_flag("--drop-unused", a->drop_unused, "Keep only experts a profiled token was routed to");
  cmd->add_option("--by", a->by, "Ranking: saliency (REAP, default) or count")
      ->check(CLI::IsMember({"saliency", "count"}));
  cmd->add_flag("--overwrite", a->overwrite, "Replace OUTPUT if it exists");
  cmd->add_flag("--json", a->json, "Print a JSON summary");
  cmd->callback([a] { run_prune(*a); });
}

}  // namespace quantlab::cli
