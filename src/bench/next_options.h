// The next steps of a bench verdict as command lines (issue 22): for each comparison, at most three
// options ranked by its problems (eval::Problem), each runnable as printed, with what `plan` predicts
// for it and what this run measured at neighbouring widths. Only what quantlab can run is offered:
// larger groups and fewer bits (size), a mixed plan (`quantize --smaller-than/--max-bytes`), routers
// pinned at 8 bits (MoE) and one bit more (accuracy), more runs (speed within noise), a larger suite.
#pragma once

#include <string>

#include "eval/report_schema.h"

namespace quantlab::bench {

struct OptionContext {
  // The float model the candidates were quantized from (bench --source). Empty: a float model among
  // the benched ones, else the commands say FLOAT_MODEL and the report says to fill it in.
  std::string source_dir;
  std::string suite, tools;  // the bench's, reused as the calibration suite of a mixed plan
};

// Fills every comparison's options (keeping the verdict's own suite-size option first). Never throws
// for a model the plan cannot describe: that model gets no plan-based option.
void add_next_options(eval::BenchResults& results, const OptionContext& context);

}  // namespace quantlab::bench
