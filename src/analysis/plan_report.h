// The report of `quantlab plan`: each setting's predicted size, memory and decode bound against the
// baseline, with the size and memory rules of the criteria applied (eval::check_size_and_memory), as
// Markdown for people and JSON for scripts.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "eval/criteria.h"
#include "quant/rounding_method.h"
#include "quant/size_plan.h"

namespace quantlab::analysis {

// What the user asked for (the flags the report echoes).
struct PlanRequest {
  int baseline_bits = 8;
  int baseline_group = 64;
  int64_t context = 4096;
  // Rounding methods the user asked about (`plan --method`): the report says what they change (issue 21).
  std::vector<quant::RoundingMethod> methods;
};

struct PlanReport {
  PlanRequest request;
  const quant::PlanSource* source = nullptr;
  quant::PlanTable table;
  const eval::Criteria* criteria = nullptr;
  std::vector<eval::StaticCheck> checks;  // one per table row
  double bandwidth_gb_per_s = 0;
  std::string bandwidth_source;           // "given" or how it was measured
};

// The size and memory rules applied to every row.
std::vector<eval::StaticCheck> check_plan(const eval::Criteria& criteria, const quant::PlanTable& table);

std::string plan_markdown(const PlanReport& report);
nlohmann::ordered_json plan_json(const PlanReport& report);

// Several models planned in one call (a fine-tune's base and the smaller base it could move to, issue
// 20): every setting of every model beside each other, each also against the first model's baseline,
// and whether the models share a tokenizer family and chat template (config.json's model_type decides
// what plan can know without the tokenizer files).
std::string plan_side_by_side_markdown(const std::vector<PlanReport>& reports);
nlohmann::ordered_json plan_side_by_side_json(const std::vector<PlanReport>& reports);

}  // namespace quantlab::analysis
