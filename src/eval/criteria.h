// Decision rules for a quantized candidate against its baseline (docs/criteria.md), read from a small
// TOML file or taken from the defaults of ARCHITECTURE.md:
//
//   [optimal]                  [minimum_viable]
//   accuracy_min_pct = 100     accuracy_min_pct = 80
//   disk_smaller_pct = 30      disk_smaller_pct = 25
//   memory_less_pct  = 25      memory_less_pct  = 20
//   speed_ratio      = 1.1     speed_ratio      = 1.0
//
// A key left out is not checked. `plan` evaluates the size and memory rules (they need no model run);
// `bench` adds accuracy and speed.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace quantlab::eval {

struct CriteriaLevel {
  std::optional<double> accuracy_min_pct;  // suite score at least this % of the baseline's score
  std::optional<double> disk_smaller_pct;  // disk size at least this % below the baseline's
  std::optional<double> memory_less_pct;   // runtime memory at least this % below the baseline's
  std::optional<double> speed_ratio;       // decode tokens/s at least this multiple of the baseline's
};

struct Criteria {
  std::string source = "built-in (ARCHITECTURE.md)";  // the file, for messages and reports
  CriteriaLevel optimal;
  CriteriaLevel minimum_viable;
};

Criteria default_criteria();

// Throws Error(kInvalidInput) naming path and line for TOML syntax errors, unknown sections or keys,
// values that are not numbers, negative percentages or non-positive ratios.
Criteria parse_criteria(std::string_view toml_text, const std::string& path);
Criteria load_criteria(const std::string& path);

// The verdict the size and memory rules alone allow.
enum class StaticVerdict {
  kOptimalCandidate,  // meets the optimal size and memory rules: accuracy and speed decide
  kViableCandidate,   // meets only the minimum-viable ones: at best minimum viable
  kCannotPass,        // fails even the minimum-viable size or memory rule, however accurate
};
std::string_view static_verdict_name(StaticVerdict v);

struct StaticCheck {
  StaticVerdict verdict = StaticVerdict::kCannotPass;
  std::vector<std::string> reasons;  // why a level is out of reach, e.g. "disk 23.5 % smaller < 25 %"
};

StaticCheck check_size_and_memory(const Criteria& criteria, double disk_smaller_pct, double memory_less_pct);

}  // namespace quantlab::eval
