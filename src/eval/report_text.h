// Human-readable forms of the bench results: the Markdown report (REPORT.md) and the plain-text
// table `quantlab bench` prints on stdout. Both are views of BenchResults; RESULTS.json holds more.
#pragma once

#include <cstdint>
#include <string>

#include "eval/report_schema.h"

namespace quantlab::eval {

std::string render_markdown(const BenchResults& results);
std::string render_table(const BenchResults& results);

// Appends the "## Decision record" section (report_decision.cc): nothing without comparisons.
void md_decision_record(std::string& out, const BenchResults& results);

// "1.23 MB", "23.4 GB": decimal units, as disk sizes are usually quoted.
std::string format_bytes(uint64_t bytes);

}  // namespace quantlab::eval
