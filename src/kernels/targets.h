// Which Highway targets the kernels were compiled for, and a switch to run them on one target only
// (for tests that exercise every code path, and for benchmarks that compare targets).
#pragma once

#include <cstdint>
#include <vector>

namespace quantlab::kernels {

// The compiled targets this CPU supports (HWY_* bits), best first as Highway lists them.
std::vector<int64_t> compiled_targets();

// Makes every kernel dispatch to `target` (one HWY_* bit from compiled_targets()); 0 restores normal
// dispatch. Not thread-safe: call between kernel invocations only.
void force_target(int64_t target);

const char* target_name(int64_t target);

}  // namespace quantlab::kernels
