// The sweep's outputs: results.json (schema "quantlab.sweep/1": one summary row per width, with the
// plan's prediction next to its measurement, the answer, and the full bench results), report.md, and
// chart.svg (accuracy and retention against bits and against disk size).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "analysis/sweep.h"
#include "analysis/svg_chart.h"

namespace quantlab::analysis {

nlohmann::ordered_json sweep_json(const SweepResult& r, const SweepOptions& o);
std::string sweep_markdown(const SweepResult& r, const SweepOptions& o);
std::vector<ChartPanel> sweep_chart_panels(const SweepResult& r);
std::string sweep_chart_svg(const SweepResult& r);

}  // namespace quantlab::analysis
