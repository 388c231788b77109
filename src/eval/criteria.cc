#include "eval/criteria.h"

#include <toml++/toml.h>

#include <fmt/format.h>

#include "core/error.h"
#include "core/mapped_file.h"

namespace quantlab::eval {

namespace {

// A value may sit exactly on the threshold ("at least 25 %"): allow for rounding in the inputs.
constexpr double kTolerance = 1e-9;

struct KeySpec {
  std::string_view name;
  std::optional<double> CriteriaLevel::*field;
  bool is_ratio;  // ratios must be > 0; percentages >= 0
};

constexpr KeySpec kKeys[] = {
    {"accuracy_min_pct", &CriteriaLevel::accuracy_min_pct, false},
    {"disk_smaller_pct", &CriteriaLevel::disk_smaller_pct, false},
    {"memory_less_pct", &CriteriaLevel::memory_less_pct, false},
    {"speed_ratio", &CriteriaLevel::speed_ratio, true},
};

std::string known_keys() {
  std::string s;
  for (const auto& k : kKeys) s += (s.empty() ? "" : ", ") + std::string(k.name);
  return s;
}

double number_of(const toml::node& node, const std::string& path, std::string_view section, std::string_view key) {
  const auto line = node.source().begin.line;
  std::optional<double> v = node.value<double>();  // integers convert too
  if (!v || !node.is_number())
    fail_input("{}:{}: [{}] {} must be a number", path, line, section, key);
  return *v;
}

CriteriaLevel parse_level(const toml::table& table, const std::string& path, std::string_view section) {
  CriteriaLevel level;
  for (const auto& [key, node] : table) {
    const KeySpec* spec = nullptr;
    for (const auto& k : kKeys)
      if (k.name == key.str()) spec = &k;
    if (!spec)
      fail_input("{}:{}: unknown key '{}' in [{}] (known: {})", path, key.source().begin.line, key.str(), section,
                 known_keys());
    const double v = number_of(node, path, section, key.str());
    if (spec->is_ratio ? !(v > 0) : !(v >= 0))
      fail_input("{}:{}: [{}] {} = {} must be {}", path, node.source().begin.line, section, key.str(), v,
                 spec->is_ratio ? "positive" : "zero or more");
    level.*(spec->field) = v;
  }
  return level;
}

void check_level(const CriteriaLevel& level, std::string_view name, double disk, double memory,
                 std::vector<std::string>& reasons, bool& passes) {
  if (level.disk_smaller_pct && disk + kTolerance < *level.disk_smaller_pct) {
    passes = false;
    reasons.push_back(fmt::format("{}: disk {:.1f} % smaller < {:g} %", name, disk, *level.disk_smaller_pct));
  }
  if (level.memory_less_pct && memory + kTolerance < *level.memory_less_pct) {
    passes = false;
    reasons.push_back(fmt::format("{}: memory {:.1f} % less < {:g} %", name, memory, *level.memory_less_pct));
  }
}

}  // namespace

Criteria default_criteria() {
  Criteria c;
  c.optimal = {100.0, 30.0, 25.0, 1.1};
  c.minimum_viable = {80.0, 25.0, 20.0, 1.0};  // speed "similar or better"
  return c;
}

Criteria parse_criteria(std::string_view text, const std::string& path) {
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    fail_input("{}:{}: {}", path, e.source().begin.line, e.description());
  }
  Criteria c;
  c.source = path;
  for (const auto& [key, node] : root) {
    const auto line = key.source().begin.line;
    const bool optimal = key.str() == "optimal", viable = key.str() == "minimum_viable";
    if (!optimal && !viable)
      fail_input("{}:{}: unknown section or key '{}' (sections: [optimal], [minimum_viable])", path, line, key.str());
    if (!node.is_table()) fail_input("{}:{}: '{}' must be a section", path, line, key.str());
    (optimal ? c.optimal : c.minimum_viable) = parse_level(*node.as_table(), path, key.str());
  }
  return c;
}

Criteria load_criteria(const std::string& path) { return parse_criteria(read_text_file(path), path); }

std::string_view static_verdict_name(StaticVerdict v) {
  switch (v) {
    case StaticVerdict::kOptimalCandidate: return "optimal candidate";
    case StaticVerdict::kViableCandidate: return "viable candidate";
    case StaticVerdict::kCannotPass: return "cannot pass";
  }
  return "?";
}

StaticCheck check_size_and_memory(const Criteria& criteria, double disk_smaller_pct, double memory_less_pct) {
  StaticCheck check;
  bool optimal = true, viable = true;
  check_level(criteria.optimal, "optimal", disk_smaller_pct, memory_less_pct, check.reasons, optimal);
  check_level(criteria.minimum_viable, "minimum viable", disk_smaller_pct, memory_less_pct, check.reasons, viable);
  // An optimal result is also at least viable, so the optimal rules alone can make a candidate.
  check.verdict = optimal ? StaticVerdict::kOptimalCandidate
                  : viable ? StaticVerdict::kViableCandidate
                           : StaticVerdict::kCannotPass;
  return check;
}

}  // namespace quantlab::eval
