// Measured gains (issue 15): sensitivity's proxy sums each module's expected squared output error, but
// the modules' output errors are not in one currency. o_proj's and down_proj's land on the residual
// stream undamped, q/k errors pass through the softmax, the output head's go straight to the logits; so
// a proxy-only allocation starves exactly the modules that matter most. Each module is therefore probed:
// quantized alone (MLX-exact, in memory, read by the engine's own quantized kernels) while every other
// module stays float, run teacher-forced on the calibration suite's prompts and the fused model's
// replies, and KL(fused ‖ probe) measured. gain = KL / proxy error at the probe setting converts the
// module's proxy into KL units, and allocation minimises Σ gain · error, i.e. the predicted total KL (KL
// is locally quadratic in the logits, so small independent perturbations add). The proxy still says how
// the error changes with the width inside one module (same inputs, same weights); the probe says what
// one unit of that error costs at the output. Cost: one teacher-forced pass over the probe queries per
// quantizable tensor (stacked experts are one tensor).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "analysis/reference_replies.h"
#include "analysis/sensitivity.h"
#include "core/thread_pool.h"

namespace quantlab::analysis {

struct GainOptions {
  std::string fused_dir;
  std::string suite_path;
  std::string tools_path;     // may be empty
  size_t max_queries = 0;     // 0: every query of the suite
  size_t max_tokens = 16;     // length of the fused model's reference replies
  int probe_bits = 3;         // the candidate probed: the lowest width >= this at the first group size
  bool show_progress = true;
};

// The fused model and its reference replies, loaded once; modules are swapped in and out one at a time.
class ModuleProbe {
 public:
  ModuleProbe(const GainOptions& options, ThreadPool& pool);
  ~ModuleProbe();
  ModuleProbe(const ModuleProbe&) = delete;
  ModuleProbe& operator=(const ModuleProbe&) = delete;

  // Mean over the queries of KL(fused ‖ fused with `module` alone quantized at bits/group_size), averaged
  // over each reply's positions. Throws Error(kInvalidInput) naming the module when the model has no such
  // module or it is not a float matrix.
  double kl_with(const std::string& module, int bits, int group_size);

  size_t queries() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Fills the probe of every tensor of `s` that has more than one candidate (routers keep theirs).
void measure_gains(const GainOptions& options, Sensitivity& s, ThreadPool& pool);

}  // namespace quantlab::analysis
