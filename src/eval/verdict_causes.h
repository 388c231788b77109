// The parts of the verdict that explain it (issue 22): why each failed rule failed, which problem
// that makes (suite, accuracy, size, speed), the headline that follows, and the queries a suite needs.
// Internal to eval/verdict.cc; a header of its own only to keep both files short.
#pragma once

#include "eval/criteria.h"
#include "eval/verdict.h"

namespace quantlab::eval {

// A value exactly on a threshold passes ("at least 25 %"); allow for rounding in the inputs.
inline constexpr double kTolerance = 1e-9;

// Fills relation, baseline_fails and cause of every failed check, and c.problems from the checks of
// the level that decided the verdict.
void explain_failed_checks(Comparison& c, const Criteria& criteria, const ModelFigures& baseline,
                           const ModelFigures& candidate);

SuiteNeed suite_need(const Criteria& criteria, const ModelFigures& baseline, const PairedAccuracy& paired);

// "keep q8; ..." for a failed candidate: the first problem decides the sentence, the others follow it.
std::string failure_headline(const Comparison& c, const Criteria& criteria, const ModelFigures& baseline,
                             const ModelFigures& candidate);

// A float candidate against a quantized baseline, or more bits than it: nothing to save, nothing to try.
bool stores_more_bits(const ModelFigures& baseline, const ModelFigures& candidate);

// Appends to c.next_steps what each problem calls for.
void add_problem_steps(Comparison& c, const ModelFigures& baseline, const ModelFigures& candidate);

// The suite-size option, first among the options, when the suite is the problem.
void add_suite_option(Comparison& c);

}  // namespace quantlab::eval
