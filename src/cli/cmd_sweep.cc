// quantlab sweep FUSED --suite Q [--tools T] [--bits 8,7,6,5,4,3] [--group-size G] [--criteria C]
//                [--baseline-bits 8] [--base BASE] [--keep-ratio 1,0.75,0.5] [--target-bpw 3,3.5,4]
//                [--recipe mixed_3_6,...] [--calibration SUITE] [--max-tokens N] [--runs R]
//                [--no-cold] [--bandwidth GB/s] --out DIR
// Quantizes each width into DIR/models, benchmarks each with the bench machinery (one child process
// per model), and writes DIR/report.md, DIR/results.json and DIR/chart.svg. Rerunning the same command
// resumes: widths already quantized and measured with the same settings are reused.
//
// Across machines (issue 17): `--shard I/N` measures only its share of the points (a fixed assignment by
// position) into its own DIR and writes DIR/shard.json; `quantlab sweep merge OUT DIR...` checks that the
// shards come from one sweep (same settings, shards 1..N each once), gathers their results and writes
// the one report, chart and answer.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <ctime>
#include <filesystem>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <tuple>

#include "analysis/sweep.h"
#include "bench/machine_probe.h"
#include "bench/runner.h"
#include "cli/bit_widths.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "io/output_dir.h"
#include "core/progress.h"
#include "core/thread_pool.h"

namespace quantlab::cli {

namespace {

struct SweepArgs {
  std::string fused, base, bits = "8,7,6,5,4,3", suite, tools, criteria, out;
  std::vector<double> keep_ratios = {1.0}, target_bpw;
  std::vector<std::string> recipes, methods;
  std::string calibration;
  int group_size = 64, baseline_bits = 8;
  size_t max_tokens = 64, runs = 1, threads = 0;
  double bandwidth = 0;  // GB/s; 0: measured once at the start
  bool thinking = false, no_cold = false, quiet = false;
  std::string shard;  // "I/N"; empty: the whole sweep
};

// The flags that define a sweep's points and measurements: shards must agree on all of them.
nlohmann::ordered_json command_json(const SweepArgs& a) {
  return {{"fused", a.fused},           {"base", a.base},           {"bits", a.bits},
          {"suite", a.suite},           {"tools", a.tools},         {"criteria", a.criteria},
          {"keep_ratio", a.keep_ratios}, {"target_bpw", a.target_bpw}, {"recipe", a.recipes},
          {"method", a.methods},
          {"calibration", a.calibration}, {"group_size", a.group_size}, {"baseline_bits", a.baseline_bits},
          {"max_tokens", a.max_tokens}, {"runs", a.runs},           {"thinking", a.thinking},
          {"no_cold", a.no_cold}};
}

SweepArgs args_from_json(const nlohmann::ordered_json& j, const std::string& source) {
  SweepArgs a;
  try {
    a.fused = j.at("fused"), a.base = j.at("base"), a.bits = j.at("bits"), a.suite = j.at("suite");
    a.tools = j.at("tools"), a.criteria = j.at("criteria"), a.calibration = j.at("calibration");
    a.keep_ratios = j.at("keep_ratio").get<std::vector<double>>();
    a.target_bpw = j.at("target_bpw").get<std::vector<double>>();
    a.recipes = j.at("recipe").get<std::vector<std::string>>();
    a.methods = j.value("method", std::vector<std::string>{});
    a.group_size = j.at("group_size"), a.baseline_bits = j.at("baseline_bits");
    a.max_tokens = j.at("max_tokens"), a.runs = j.at("runs"), a.thinking = j.at("thinking"), a.no_cold = j.at("no_cold");
  } catch (const nlohmann::ordered_json::exception& e) {
    fail_input("{}: 'command' is not a sweep's flags: {}", source, e.what());
  }
  return a;
}

// "2/4" -> {2, 4}; a usage error unless 1 <= I <= N.
std::pair<size_t, size_t> parse_shard(const std::string& text) {
  size_t i = 0, n = 0;
  char slash = 0, extra = 0;
  if (std::sscanf(text.c_str(), "%zu%c%zu%c", &i, &slash, &n, &extra) != 3 || slash != '/' || i < 1 || i > n)
    fail(ErrorKind::kUsage, "--shard {}: expected I/N with 1 <= I <= N (e.g. 1/2)", text);
  return {i, n};
}

void print_summary(const analysis::SweepResult& r, const std::string& out) {
  fmt::print("{:>20}  {:>10}  {:>9}  {:>9}  {:>8}  {}\n", "width", "disk", "accuracy", "retention", "of bound",
             "verdict");
  for (const auto& w : r.widths) {
    const std::string kept = w.retention ? fmt::format("{:.3f}", w.retention->cosine()) : "-";
    const std::string verdict = !w.result.ok ? "error: " + w.result.error
                                : w.name == r.baseline ? "baseline"
                                : w.comparison ? std::string(eval::verdict_name(w.comparison->verdict)) : "-";
    // Measured decode speed as a share of the plan's bound (bandwidth / bytes read per token).
    const double of_bound = w.result.ok && w.result.plan ? eval::plan_vs_measured(w.result).decode_fraction_of_bound : 0;
    const std::string bound = of_bound > 0 ? fmt::format("{:.0f} %", 100 * of_bound) : "-";
    fmt::print("{:>20}  {:>10}  {:>8.1f}%  {:>9}  {:>8}  {}{}\n", w.name, human_bytes(w.result.info.disk_bytes),
               w.result.accuracy.overall.pct(), kept, bound, verdict, w.benched_now ? "" : " (reused)");
  }
  fmt::print("lowest minimum viable: {}; lowest optimal: {}\n",
             r.lowest_minimum_viable ? fmt::format("{}-bit", *r.lowest_minimum_viable) : "none",
             r.lowest_optimal ? fmt::format("{}-bit", *r.lowest_optimal) : "none");
  const auto smallest = [&r](const std::optional<size_t>& i) {
    return i ? fmt::format("{} ({:.2f} bits per weight, {})", r.widths[*i].name, r.widths[*i].result.info.bits_per_weight,
                           human_bytes(r.widths[*i].result.info.disk_bytes))
             : std::string("none");
  };
  if (r.widths.size() > 1)
    fmt::print("smallest of any kind: minimum viable {}; optimal {}\n", smallest(r.smallest_minimum_viable),
               smallest(r.smallest_optimal));
  fmt::print("report: {0}/report.md, {0}/results.json, {0}/chart.svg\n", out);
}

analysis::SweepOptions sweep_options(const SweepArgs& a) {
  analysis::SweepOptions o;
  o.fused_dir = a.fused;
  o.base_dir = a.base;
  o.bits = parse_bit_widths(a.bits);
  o.keep_ratios = a.keep_ratios;
  o.target_bpw = a.target_bpw;
  o.recipes = a.recipes;
  o.methods = a.methods;
  o.calibration_suite = a.calibration;
  o.group_size = a.group_size;
  o.baseline_bits = a.baseline_bits;
  o.out_dir = a.out;
  o.show_progress = !a.quiet && Progress::stderr_is_terminal();
  o.bench = bench::make_bench_settings({a.suite, a.tools, a.criteria, a.max_tokens, a.runs, a.threads, a.thinking,
                                        a.no_cold});
  o.machine = bench::describe_machine(a.threads, a.bandwidth);
  o.created_utc = utc_now_iso8601();
  return o;
}

nlohmann::ordered_json machine_json(const eval::MachineInfo& m) {
  return {{"cpu", m.cpu}, {"simd_target", m.simd_target}, {"threads", m.threads},
          {"bandwidth_gb_per_s", m.bandwidth_gb_per_s}, {"bandwidth_source", m.bandwidth_source}};
}

void run_sweep_command(const SweepArgs& a) {
  if (a.fused.empty() || a.suite.empty() || a.out.empty())
    fail(ErrorKind::kUsage, "sweep needs FUSED, --suite and --out (or: quantlab sweep merge OUT DIR...)");
  analysis::SweepOptions o = sweep_options(a);
  if (!a.shard.empty()) std::tie(o.shard_index, o.shard_count) = parse_shard(a.shard);
  // One bench worker process per width, as `quantlab bench` runs them.
  const analysis::ModelBencher measure = [&](const std::string& name, const std::string& dir) {
    const bench::BenchPlan plan = bench::make_bench_plan(o.bench, {{name, dir}}, o.machine.bandwidth_gb_per_s);
    const auto on_model = [&](size_t, std::string_view phase) {
      if (!a.quiet) fmt::print(stderr, "{}: {}\n", name, phase);
    };
    return bench::measure_models(plan, on_model).models.front();
  };
  ThreadPool pool(a.threads);
  const analysis::SweepResult r = analysis::run_sweep(o, measure, pool);
  if (o.shard_count == 1) return print_summary(r, a.out);
  const std::vector<std::string> keys = analysis::sweep_point_keys(o);
  nlohmann::ordered_json measured = nlohmann::ordered_json::array();
  for (size_t i = o.shard_index - 1; i < keys.size(); i += o.shard_count) measured.push_back(keys[i]);
  const nlohmann::ordered_json shard = {{"schema", "quantlab.sweep-shard/1"}, {"shard", o.shard_index},
                                        {"of", o.shard_count},               {"command", command_json(a)},
                                        {"machine", machine_json(o.machine)}, {"points", keys},
                                        {"measured", measured}};
  io::write_file_atomically((std::filesystem::path(a.out) / "shard.json").string(), shard.dump(2) + "\n");
  fmt::print("shard {}/{}: measured {} of {} points into {}/results; join the shards with: quantlab sweep merge OUT "
             "DIR...\n", o.shard_index, o.shard_count, measured.size(), keys.size(), a.out);
}

struct MergeArgs {
  std::string out;
  std::vector<std::string> shards;
  size_t threads = 0;
  bool quiet = false;
};

nlohmann::ordered_json read_shard(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "shard.json").string();
  if (!std::filesystem::exists(path)) fail(ErrorKind::kIo, "{}: no shard.json (not the --out of a `sweep --shard` run)", dir);
  const nlohmann::ordered_json j = nlohmann::ordered_json::parse(read_text_file(path), nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("schema", "") != "quantlab.sweep-shard/1" || !j.contains("command"))
    fail_input("{}: not a sweep shard record", path);
  return j;
}

// Refuses shards of different sweeps, naming the first flag that differs, and a set that is not 1..N once each.
void check_shards(const std::vector<nlohmann::ordered_json>& shards, const std::vector<std::string>& dirs) {
  const nlohmann::ordered_json& first = shards.front();
  std::vector<int> seen(first.value("of", size_t{0}) + 1, 0);
  for (size_t i = 0; i < shards.size(); ++i) {
    const nlohmann::ordered_json& s = shards[i];
    for (const auto& [key, value] : first["command"].items())
      if (s["command"].value(key, nlohmann::ordered_json()) != value)
        fail_input("sweep merge: {} and {} are shards of different sweeps: '{}' is {} there and {} here", dirs.front(),
                   dirs[i], key, value.dump(), s["command"].value(key, nlohmann::ordered_json()).dump());
    if (s.value("of", size_t{0}) != first.value("of", size_t{0}))
      fail_input("sweep merge: {} is a shard of {} and {} of {}", dirs[i], s.value("of", 0), dirs.front(), first.value("of", 0));
    const size_t index = s.value("shard", size_t{0});
    if (index < 1 || index >= seen.size()) fail_input("sweep merge: {}: shard {} of {}", dirs[i], index, seen.size() - 1);
    if (++seen[index] > 1) fail_input("sweep merge: shard {}/{} is given twice ({})", index, seen.size() - 1, dirs[i]);
  }
  for (size_t index = 1; index < seen.size(); ++index)
    if (!seen[index]) fail_input("sweep merge: shard {}/{} is missing", index, seen.size() - 1);
}

void run_merge_command(const MergeArgs& m) {
  std::vector<nlohmann::ordered_json> shards;
  for (const std::string& dir : m.shards) shards.push_back(read_shard(dir));
  check_shards(shards, m.shards);
  SweepArgs a = args_from_json(shards.front()["command"], m.shards.front() + "/shard.json");
  a.out = m.out;
  a.threads = m.threads;
  a.quiet = m.quiet;
  const std::filesystem::path results = std::filesystem::path(m.out) / "results";
  std::filesystem::create_directories(results);
  for (size_t i = 0; i < shards.size(); ++i)
    for (const auto& key : shards[i]["measured"]) {
      const std::filesystem::path from = std::filesystem::path(m.shards[i]) / "results" / (key.get<std::string>() + ".json");
      if (!std::filesystem::exists(from)) fail_input("sweep merge: {} is missing (did shard {} finish?)", from.string(), i + 1);
      std::filesystem::copy_file(from, results / from.filename(), std::filesystem::copy_options::overwrite_existing);
    }
  analysis::SweepOptions o = sweep_options(a);
  o.merge_only = true;
  const nlohmann::ordered_json& machine = shards.front()["machine"];  // the shards' machine, not this one's
  o.machine.cpu = machine.value("cpu", o.machine.cpu);
  o.machine.bandwidth_gb_per_s = machine.value("bandwidth_gb_per_s", o.machine.bandwidth_gb_per_s);
  o.machine.bandwidth_source = machine.value("bandwidth_source", o.machine.bandwidth_source);
  for (const auto& s : shards)
    if (s["machine"].value("cpu", "") != o.machine.cpu)
      fmt::print(stderr, "warning: the shards ran on different CPUs ({} and {}): speed ratios across them mix machines\n",
                 o.machine.cpu, s["machine"].value("cpu", ""));
  ThreadPool pool(a.threads);
  const analysis::ModelBencher none = [](const std::string&, const std::string&) -> eval::ModelResult {
    fail(ErrorKind::kInternal, "sweep merge measures nothing");
  };
  print_summary(analysis::run_sweep(o, none, pool), m.out);
}

}  // namespace

void register_sweep(CLI::App& app) {
  auto a = std::make_shared<SweepArgs>();
  auto* cmd = app.add_subcommand("sweep", "Quantize a fused model at several widths, benchmark each, and find the "
                                          "lowest width that is minimum viable / optimal");
  cmd->add_option("fused", a->fused, "Fused float model directory (required unless merging)");
  cmd->add_option("--suite", a->suite, "Query suite (JSONL) (required unless merging)");
  cmd->add_option("--tools", a->tools, "Tool schemas (JSON) rendered into the prompts");
  cmd->add_option("--bits", a->bits, "Widths to sweep, comma-separated")->capture_default_str();
  cmd->add_option("--keep-ratio", a->keep_ratios,
                  "MoE: shares of the experts to keep (least salient on the suite dropped), each crossed with every "
                  "width, e.g. 1,0.75,0.5")
      ->delimiter(',');
  cmd->add_option("--target-bpw", a->target_bpw,
                  "Mixed precision: one plan allocated per budget in bits per weight (calibrate, sensitivity, measured "
                  "gains, allocate; docs/mixed-precision.md), e.g. 3,3.5,4,4.5")
      ->delimiter(',');
  cmd->add_option("--recipe", a->recipes, "mlx-lm mixed recipes to add, e.g. mixed_3_6,mixed_4_6")->delimiter(',');
  cmd->add_option("--method", a->methods,
                  "Rounding methods to add beside round-to-nearest, each at every width: gptq, delta (delta needs "
                  "--base); calibrated once on --calibration (docs/rounding.md)")
      ->delimiter(',');
  cmd->add_option("--calibration", a->calibration, "Suite the mixed plans and the gptq/delta statistics are calibrated on (default: --suite)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--group-size", a->group_size, "Quantization group size (32, 64, 128)")->capture_default_str();
  cmd->add_option("--criteria", a->criteria, "Decision rules (TOML); default: ARCHITECTURE.md's");
  cmd->add_option("--baseline-bits", a->baseline_bits, "Width the others are compared with")
      ->check(CLI::Range(2, 8))->capture_default_str();
  cmd->add_option("--base", a->base, "Base float model: adds the weight-only retention of the fine-tune per width");
  cmd->add_option("--max-tokens", a->max_tokens, "Most tokens per reply")->check(CLI::Range(1, 1 << 16))->capture_default_str();
  cmd->add_option("--runs", a->runs, "Speed runs over the suite per width")->check(CLI::Range(1, 100))->capture_default_str();
  cmd->add_option("--out", a->out, "Output and resume directory (required unless merging)");
  cmd->add_option("--shard", a->shard,
                  "I/N: measure only this shard's share of the points (for a job array across machines; join the "
                  "shards' --out directories with `sweep merge`)");
  add_threads_option(cmd, &a->threads);
  cmd->add_flag("--thinking", a->thinking, "Render prompts with thinking on");
  cmd->add_flag("--no-cold", a->no_cold, "Skip the cold-cache load measurement of each width");
  cmd->add_option("--bandwidth", a->bandwidth,
                  "Memory bandwidth in GB/s for the plan's decode bound (default: measured at the start, ~0.5 s)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--quiet", a->quiet, "No progress output");
  auto m = std::make_shared<MergeArgs>();
  auto* merge = cmd->add_subcommand("merge", "Join the --out directories of `sweep --shard I/N` runs into one report, "
                                             "chart and answer (refusing shards of different sweeps)");
  merge->add_option("out", m->out, "Output directory of the joined sweep")->required();
  merge->add_option("shards", m->shards, "The shards' --out directories (all N of them)")->required();
  add_threads_option(merge, &m->threads);
  merge->add_flag("--quiet", m->quiet, "No progress output");
  merge->callback([m] { run_merge_command(*m); });
  cmd->callback([a, merge] {
    if (!merge->parsed()) run_sweep_command(*a);
  });
}

}  // namespace quantlab::cli
