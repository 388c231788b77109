// quantlab plan MODEL [--bits 2,3,...] [--group-size 32,64,128] [--baseline-bits 8]
//   [--baseline-group-size 64] [--context N] [--bandwidth GB/s] [--criteria FILE] [--json]
// Predicts size, memory and decode speed per setting from config.json (+ headers) and marks which
// settings the size and memory rules already rule out (issue 7).
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench/machine_probe.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "eval/criteria.h"
#include "quant/size_plan.h"

namespace quantlab::cli {

namespace {

struct PlanArgs {
  std::string model, criteria_file;
  std::vector<int> bits = {2, 3, 4, 5, 6, 7, 8}, groups = {32, 64, 128};
  int baseline_bits = 8, baseline_group = 64;
  int64_t context = 4096;
  double bandwidth = 0;
  size_t threads = 0;
  bool json = false;
};

struct Bandwidth {
  double gb_per_s = 0;
  std::string source;
};

Bandwidth resolve_bandwidth(const PlanArgs& a, ThreadPool& pool) {
  if (a.bandwidth > 0) return {a.bandwidth, "given"};
  // A quick probe (~0.5 s): 256 MiB, far beyond the caches, best of 3 passes.
  const auto r = bench::measure_read_bandwidth(pool, size_t{256} << 20, 3);
  return {r.read_gb_per_s, fmt::format("measured, {} threads", r.threads)};
}

// Sizes print in GB (decimal), or MB for models under 1 GB so that tiny test models stay readable.
struct Unit {
  double bytes;
  const char* name;
};
Unit unit_for(uint64_t typical_bytes) { return typical_bytes >= 1e9 ? Unit{1e9, "GB"} : Unit{1e6, "MB"}; }
std::string amount(uint64_t bytes, Unit u) { return fmt::format("{:.2f}", bytes / u.bytes); }

// "23.5 % smaller" prints as "-23.5 %"; values that round to zero print without a sign.
std::string pct(double v) { return std::abs(v) < 0.05 ? "0.0 %" : fmt::format("{:+.1f} %", -v); }

std::string verdict_text(const eval::StaticCheck& c, bool is_baseline) {
  if (is_baseline) return "baseline";
  if (c.verdict == eval::StaticVerdict::kOptimalCandidate) return "**optimal candidate**";
  return std::string(eval::static_verdict_name(c.verdict));
}

void print_markdown(const PlanArgs& a, const quant::PlanSource& src, const quant::PlanTable& t,
                    const eval::Criteria& criteria, const std::vector<eval::StaticCheck>& checks, const Bandwidth& bw) {
  const std::string base = fmt::format("{}-bit g{}", a.baseline_bits, a.baseline_group);
  const Unit u = unit_for(t.float16_bytes);
  fmt::print("model      {} ({})\n", src.dir, src.config.model_type);
  fmt::print("read from  {}\n", quant::plan_origin_name(src.origin));
  if (src.stored_quant)
    fmt::print("stored as  {}-bit g{}, {} {} of tensors\n", src.stored_quant->bits, src.stored_quant->group_size,
               amount(src.stored_tensor_bytes, u), u.name);
  fmt::print("parameters {:.3f} B; float16 {} {}; baseline {} {} {}\n", t.baseline.parameters / 1e9,
             amount(t.float16_bytes, u), u.name, base, amount(t.baseline.disk_bytes(), u), u.name);
  fmt::print("memory     weights + f32 KV cache at {} positions ({} {}) + scratch ({} {})\n", a.context,
             amount(t.baseline.kv_cache_bytes, u), u.name, amount(t.baseline.scratch_bytes, u), u.name);
  fmt::print("speed      decode bound = bandwidth {:.1f} GB/s ({}) / weight bytes read per token\n", bw.gb_per_s, bw.source);
  fmt::print("criteria   {}\n\n", criteria.source);
  fmt::print("| bits | group | disk {0} | bits/weight | disk vs {1} | vs f16 | memory {0} | memory vs {1} | "
             "read/token {0} | tok/s bound | speed vs {1} | size & memory rules |\n", u.name, base);
  fmt::print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
  for (size_t i = 0; i < t.rows.size(); ++i) {
    const auto& r = t.rows[i];
    const auto& e = r.estimate;
    const bool is_base = e.bits == a.baseline_bits && e.group_size == a.baseline_group;
    fmt::print("| {} | {} | {} | {:.3f} | {} | {} | {} | {} | {:.3f} | {:.1f} | {:.2f}x | {} |\n", e.bits, e.group_size,
               amount(e.disk_bytes(), u), e.bits_per_weight(), pct(r.disk_smaller_pct), pct(r.float16_smaller_pct),
               amount(e.memory_bytes(), u), pct(r.memory_less_pct), e.bytes_per_token / u.bytes, r.tokens_per_s,
               r.speed_ratio, verdict_text(checks[i], is_base));
  }
  fmt::print("\nsize & memory rules: 'cannot pass' = fails even the minimum-viable disk or memory rule however "
             "accurate; candidates still need `bench` for accuracy and speed.\n");
  for (const auto& r : t.rows)
    if (r.estimate.bits == 7) {
      fmt::print("7-bit is a quantlab extension (MLX layout); mlx-lm refuses to load it.\n");
      break;
    }
}

nlohmann::ordered_json level_json(const eval::CriteriaLevel& l) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  if (l.disk_smaller_pct) j["disk_smaller_pct"] = *l.disk_smaller_pct;
  if (l.memory_less_pct) j["memory_less_pct"] = *l.memory_less_pct;
  if (l.speed_ratio) j["speed_ratio"] = *l.speed_ratio;
  if (l.accuracy_min_pct) j["accuracy_min_pct"] = *l.accuracy_min_pct;
  return j;
}

nlohmann::ordered_json row_json(const quant::PlanRow& r, const eval::StaticCheck& c) {
  const auto& e = r.estimate;
  return {{"bits", e.bits}, {"group_size", e.group_size}, {"parameters", e.parameters},
          {"tensor_bytes", e.tensor_bytes}, {"header_bytes", e.header_bytes}, {"disk_bytes", e.disk_bytes()},
          {"bits_per_weight", e.bits_per_weight()}, {"disk_smaller_pct", r.disk_smaller_pct},
          {"float16_smaller_pct", r.float16_smaller_pct}, {"kv_cache_bytes", e.kv_cache_bytes},
          {"scratch_bytes", e.scratch_bytes}, {"memory_bytes", e.memory_bytes()},
          {"memory_less_pct", r.memory_less_pct}, {"bytes_per_token", e.bytes_per_token},
          {"tokens_per_s_bound", r.tokens_per_s}, {"speed_ratio", r.speed_ratio},
          {"verdict", eval::static_verdict_name(c.verdict)}, {"reasons", c.reasons}};
}

void print_json(const PlanArgs& a, const quant::PlanSource& src, const quant::PlanTable& t,
                const eval::Criteria& criteria, const std::vector<eval::StaticCheck>& checks, const Bandwidth& bw) {
  nlohmann::ordered_json j = {
      {"model", src.dir}, {"model_type", src.config.model_type}, {"origin", quant::plan_origin_name(src.origin)},
      {"parameters", t.baseline.parameters}, {"float16_bytes", t.float16_bytes}, {"context", a.context},
      {"bandwidth_gb_per_s", bw.gb_per_s}, {"bandwidth_source", bw.source},
      {"baseline", {{"bits", a.baseline_bits}, {"group_size", a.baseline_group}}},
      {"criteria", {{"source", criteria.source}, {"optimal", level_json(criteria.optimal)},
                    {"minimum_viable", level_json(criteria.minimum_viable)}}}};
  if (src.stored_quant)
    j["stored"] = {{"bits", src.stored_quant->bits}, {"group_size", src.stored_quant->group_size},
                   {"tensor_bytes", src.stored_tensor_bytes}};
  j["rows"] = nlohmann::ordered_json::array();
  for (size_t i = 0; i < t.rows.size(); ++i) j["rows"].push_back(row_json(t.rows[i], checks[i]));
  fmt::print("{}\n", j.dump(2));
}

void run_plan(const PlanArgs& a) {
  if (a.context < 1) fail(ErrorKind::kUsage, "--context {}: must be at least 1", a.context);
  const eval::Criteria criteria = a.criteria_file.empty() ? eval::default_criteria() : eval::load_criteria(a.criteria_file);
  const quant::PlanSource src = quant::load_plan_source(a.model);
  std::vector<quant::QuantSetting> settings;
  for (int b : a.bits)
    for (int g : a.groups) settings.push_back({b, g});
  ThreadPool pool(a.threads);
  quant::RuntimeAssumptions runtime;
  runtime.context = a.context;
  runtime.threads = pool.size();
  const Bandwidth bw = resolve_bandwidth(a, pool);
  const auto table = quant::make_plan_table(src, settings, {a.baseline_bits, a.baseline_group}, runtime, bw.gb_per_s, pool);
  std::vector<eval::StaticCheck> checks;
  for (const auto& r : table.rows) checks.push_back(eval::check_size_and_memory(criteria, r.disk_smaller_pct, r.memory_less_pct));
  if (a.json) print_json(a, src, table, criteria, checks, bw);
  else print_markdown(a, src, table, criteria, checks, bw);
}

}  // namespace

void register_plan(CLI::App& app) {
  auto a = std::make_shared<PlanArgs>();
  auto* cmd = app.add_subcommand("plan", "Predict size, memory and decode speed per bit width before quantizing");
  cmd->add_option("model", a->model, "Model directory (config.json alone is enough; float or MLX-quantized)")->required();
  cmd->add_option("--bits", a->bits, "Bit widths to plan (comma-separated)")
      ->delimiter(',')->check(bit_width_check());
  cmd->add_option("--group-size", a->groups, "Group sizes to plan (comma-separated)")
      ->delimiter(',')->check(group_size_check());
  cmd->add_option("--baseline-bits", a->baseline_bits, "Bits of the baseline the rules compare with")
      ->check(bit_width_check());
  cmd->add_option("--baseline-group-size", a->baseline_group, "Group size of the baseline")
      ->check(group_size_check());
  cmd->add_option("--context", a->context, "Context length for the KV-cache memory estimate (default 4096)");
  cmd->add_option("--bandwidth", a->bandwidth, "Memory bandwidth in GB/s (default: measured now, ~0.5 s)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--criteria", a->criteria_file, "Criteria TOML (docs/criteria.md); default: ARCHITECTURE.md rules");
  add_threads_option(cmd, &a->threads);
  cmd->add_flag("--json", a->json, "Machine-readable output");
  cmd->callback([a] { run_plan(*a); });
}

}  // namespace quantlab::cli
