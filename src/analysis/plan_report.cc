#include "analysis/plan_report.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <iterator>

namespace quantlab::analysis {

namespace {

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
  nlohmann::ordered_json j = {{"bits", e.bits}, {"group_size", e.group_size}, {"parameters", e.parameters},
          {"tensor_bytes", e.tensor_bytes}, {"header_bytes", e.header_bytes}, {"disk_bytes", e.disk_bytes()},
          {"bits_per_weight", e.bits_per_weight()}, {"disk_smaller_pct", r.disk_smaller_pct},
          {"float16_smaller_pct", r.float16_smaller_pct}, {"kv_cache_bytes", e.kv_cache_bytes},
          {"scratch_bytes", e.scratch_bytes}, {"memory_bytes", e.memory_bytes()},
          {"memory_less_pct", r.memory_less_pct}, {"bytes_per_token", e.bytes_per_token},
          {"tokens_per_s_bound", r.tokens_per_s}, {"speed_ratio", r.speed_ratio},
          {"verdict", eval::static_verdict_name(c.verdict)}, {"reasons", c.reasons}};
  if (!e.label.empty()) j["plan"] = e.label;  // a mixed plan: bits and group_size are its global block
  return j;
}

}  // namespace

std::vector<eval::StaticCheck> check_plan(const eval::Criteria& criteria, const quant::PlanTable& table) {
  std::vector<eval::StaticCheck> checks;
  for (const auto& r : table.rows)
    checks.push_back(eval::check_size_and_memory(criteria, r.disk_smaller_pct, r.memory_less_pct));
  return checks;
}

namespace {

// The calibrated methods among those asked about: they choose other codes, scales and biases in the same
// MLX affine layout, so every row's bytes (disk, memory, read per token) are round-to-nearest's.
std::vector<std::string> calibrated_methods(const PlanRequest& a) {
  std::vector<std::string> out;
  for (quant::RoundingMethod m : a.methods)
    if (m != quant::RoundingMethod::kRtn) out.emplace_back(quant::rounding_method_name(m));
  return out;
}

}  // namespace

std::string plan_markdown(const PlanReport& p) {
  const PlanRequest& a = p.request;
  const quant::PlanSource& src = *p.source;
  const quant::PlanTable& t = p.table;
  const eval::Criteria& criteria = *p.criteria;
  const auto& checks = p.checks;
  std::string out;
  auto sink = std::back_inserter(out);
  const std::string base = fmt::format("{}-bit g{}", a.baseline_bits, a.baseline_group);
  const Unit u = unit_for(t.float16_bytes);
  fmt::format_to(sink, "model      {} ({})\n", src.dir, src.config.model_type);
  fmt::format_to(sink, "read from  {}\n", quant::plan_origin_name(src.origin));
  if (src.stored_quant)
    fmt::format_to(sink, "stored as  {}-bit g{}, {} {} of tensors\n", src.stored_quant->bits, src.stored_quant->group_size,
               amount(src.stored_tensor_bytes, u), u.name);
  fmt::format_to(sink, "parameters {:.3f} B; float16 {} {}; baseline {} {} {}\n", t.baseline.parameters / 1e9,
             amount(t.float16_bytes, u), u.name, base, amount(t.baseline.disk_bytes(), u), u.name);
  fmt::format_to(sink, "memory     weights + f32 KV cache at {} positions ({} {}) + scratch ({} {})\n", a.context,
             amount(t.baseline.kv_cache_bytes, u), u.name, amount(t.baseline.scratch_bytes, u), u.name);
  fmt::format_to(sink, "speed      decode bound = bandwidth {:.1f} GB/s ({}) / weight bytes read per token\n",
                 p.bandwidth_gb_per_s, p.bandwidth_source);
  fmt::format_to(sink, "criteria   {}\n", criteria.source);
  if (const auto methods = calibrated_methods(a); !methods.empty())
    fmt::format_to(sink, "rounding   {}: size, memory and speed as rtn in every row (the same MLX affine layout; the "
                   "method picks other codes, scales and biases); the cost is at quantize time: calibration with "
                   "second moments, then GPTQ (docs/rounding.md)\n", fmt::join(methods, ", "));
  fmt::format_to(sink, "\n");
  fmt::format_to(sink, "| bits | group | disk {0} | bits/weight | disk vs {1} | vs f16 | memory {0} | memory vs {1} | "
             "read/token {0} | tok/s bound | speed vs {1} | size & memory rules |\n", u.name, base);
  fmt::format_to(sink, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
  for (size_t i = 0; i < t.rows.size(); ++i) {
    const auto& r = t.rows[i];
    const auto& e = r.estimate;
    const bool is_base = e.label.empty() && e.bits == a.baseline_bits && e.group_size == a.baseline_group;
    const std::string bits = e.label.empty() ? std::to_string(e.bits) : e.label;
    const std::string group = e.label.empty() ? std::to_string(e.group_size) : "mixed";
    fmt::format_to(sink, "| {} | {} | {} | {:.3f} | {} | {} | {} | {} | {:.3f} | {:.1f} | {:.2f}x | {} |\n", bits, group,
               amount(e.disk_bytes(), u), e.bits_per_weight(), pct(r.disk_smaller_pct), pct(r.float16_smaller_pct),
               amount(e.memory_bytes(), u), pct(r.memory_less_pct), e.bytes_per_token / u.bytes, r.tokens_per_s,
               r.speed_ratio, verdict_text(checks[i], is_base));
  }
  fmt::format_to(sink, "\nsize & memory rules: 'cannot pass' = fails even the minimum-viable disk or memory rule however "
             "accurate; candidates still need `bench` for accuracy and speed.\n");
  for (const auto& r : t.rows)
    if (r.estimate.bits == 7) {
      fmt::format_to(sink, "7-bit is a quantlab extension (MLX layout); mlx-lm refuses to load it.\n");
      break;
    }
  return out;
}

nlohmann::ordered_json plan_json(const PlanReport& p) {
  const quant::PlanSource& src = *p.source;
  nlohmann::ordered_json j = {
      {"model", src.dir}, {"model_type", src.config.model_type}, {"origin", quant::plan_origin_name(src.origin)},
      {"parameters", p.table.baseline.parameters}, {"float16_bytes", p.table.float16_bytes},
      {"context", p.request.context}, {"bandwidth_gb_per_s", p.bandwidth_gb_per_s},
      {"bandwidth_source", p.bandwidth_source},
      {"baseline", {{"bits", p.request.baseline_bits}, {"group_size", p.request.baseline_group}}},
      {"criteria", {{"source", p.criteria->source}, {"optimal", level_json(p.criteria->optimal)},
                    {"minimum_viable", level_json(p.criteria->minimum_viable)}}}};
  if (src.stored_quant)
    j["stored"] = {{"bits", src.stored_quant->bits}, {"group_size", src.stored_quant->group_size},
                   {"tensor_bytes", src.stored_tensor_bytes}};
  j["rows"] = nlohmann::ordered_json::array();
  for (size_t i = 0; i < p.table.rows.size(); ++i) j["rows"].push_back(row_json(p.table.rows[i], p.checks[i]));
  if (!p.request.methods.empty()) {
    j["rounding_methods"] = nlohmann::ordered_json::array();
    for (quant::RoundingMethod m : p.request.methods)
      j["rounding_methods"].push_back(
          {{"method", quant::rounding_method_name(m)},
           {"bytes_as_rtn", true},  // every row's sizes hold for it: the layout does not depend on the method
           {"needs", m == quant::RoundingMethod::kRtn ? "nothing"
                     : m == quant::RoundingMethod::kGptq ? "calibration (--calibration or --stats with second moments)"
                                                         : "calibration, and the base model or the adapter"}});
  }
  return j;
}

namespace {

std::string model_label(const PlanReport& p) { return fmt::format("{} ({})", p.source->dir, p.source->config.model_type); }

// Qwen2 and Qwen3 share the byte-level BPE vocabulary (Qwen3 adds special tokens such as <think>) but
// not the chat template; other families share neither.
std::string sharing_note(const std::vector<PlanReport>& reports) {
  std::vector<std::string> types;
  for (const PlanReport& p : reports) types.push_back(p.source->config.model_type);
  const auto family = [](const std::string& t) { return t.rfind("qwen", 0) == 0 ? std::string("qwen") : t; };
  bool same_type = true, same_family = true;
  for (const std::string& t : types) {
    same_type &= t == types.front();
    same_family &= family(t) == family(types.front());
  }
  if (same_type) return "all models are one family: same tokenizer family and chat template";
  if (same_family)
    return "the models are different Qwen generations: the same BPE vocabulary, but different special tokens and "
           "chat templates, so a suite's prompts tokenize differently (compare accuracies, not logits)";
  return "the models are different families: different tokenizers and chat templates (compare accuracies, not "
         "logits)";
}

}  // namespace

std::string plan_side_by_side_markdown(const std::vector<PlanReport>& reports) {
  std::string out;
  auto sink = std::back_inserter(out);
  const PlanReport& first = reports.front();
  const uint64_t ref_disk = first.table.baseline.disk_bytes(), ref_mem = first.table.baseline.memory_bytes();
  const std::string ref = fmt::format("{}'s {}-bit g{}", first.source->config.model_type, first.request.baseline_bits,
                                      first.request.baseline_group);
  fmt::format_to(sink, "## Side by side\n\n{}.\n\n", sharing_note(reports));
  fmt::format_to(sink, "| model | parameters B | bits | group | disk GB | memory GB | tok/s bound | disk vs {0} | "
                 "memory vs {0} |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n", ref);
  for (const PlanReport& p : reports)
    for (const auto& r : p.table.rows) {
      const auto& e = r.estimate;
      fmt::format_to(sink, "| {} | {:.3f} | {} | {} | {:.2f} | {:.2f} | {:.1f} | {} | {} |\n", model_label(p),
                     e.parameters / 1e9, e.label.empty() ? std::to_string(e.bits) : e.label,
                     e.label.empty() ? std::to_string(e.group_size) : "mixed", e.disk_bytes() / 1e9, e.memory_bytes() / 1e9,
                     r.tokens_per_s, pct(100.0 * (1.0 - double(e.disk_bytes()) / double(ref_disk))),
                     pct(100.0 * (1.0 - double(e.memory_bytes()) / double(ref_mem))));
    }
  return out;
}

nlohmann::ordered_json plan_side_by_side_json(const std::vector<PlanReport>& reports) {
  nlohmann::ordered_json models = nlohmann::ordered_json::array();
  for (const PlanReport& p : reports) models.push_back(plan_json(p));
  return {{"models", models}, {"sharing", sharing_note(reports)}};
}

}  // namespace quantlab::analysis
