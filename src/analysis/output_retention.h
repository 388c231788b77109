// How much of a fine-tune each bit width keeps, from the model's outputs on a query suite.
//
// For every query the fused float model answers greedily (its reply R, up to max_tokens). Then every
// model M (the base, and the fused model quantized at each width) is run teacher-forced on
// prompt + R, and its next-token distributions are compared with the fused model's:
//   KL(fused ‖ M) on the first reply token, and averaged over the positions of R;
//   retention = 1 − KL(fused ‖ quantized) / KL(fused ‖ base)  (1: nothing lost, 0: as far as the base);
//   decisions (tool call or direct answer, from M's own greedy reply) that differ from the fused
//   model's, and the accuracy of those decisions against the suite's expectations.
// The quantized models are written with `quantize_model` (so they are exactly what users run) into a
// work directory and removed after use unless asked to keep them.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "analysis/reference_replies.h"  // kl_divergence_from_logits
#include "core/thread_pool.h"
#include "kernels/kernels.h"

namespace quantlab::analysis {

struct OutputRetentionOptions {
  std::string base_dir;
  std::string fused_dir;  // a float checkpoint (fuse an adapter first)
  std::string suite_path;
  std::string tools_path;  // may be empty: prompts without tools
  std::vector<int> bits = {2, 3, 4, 5, 6, 7, 8};
  int group_size = 64;
  size_t max_tokens = 32;       // length of the fused model's reference reply
  size_t decision_tokens = 12;  // tokens each model generates to show its decision
  std::string work_dir;         // quantized models go to work_dir/q<bits>-g<group>
  bool keep_models = false;
  bool show_progress = true;
  // The arithmetic each model runs with (kernels::Compute): the reference's, and per compared label
  // (absent: exact). The reference may itself be a quantized model, so that KL(exact ‖ int8) of one
  // directory is a divergence like any other.
  kernels::Compute fused_compute = kernels::Compute::kExact;
  std::map<std::string, kernels::Compute> model_compute;
};

// One model's distance from the fused float model, averaged over the suite's queries.
struct ModelDivergence {
  std::string label;  // "base" or "<b>-bit"
  int bits = 0;       // 0 for the base
  double kl_first = 0;  // mean over queries of KL(fused ‖ M) at the first reply token (nats)
  double kl_reply = 0;  // mean over queries of the mean KL over the reply's positions
  double retention_first = 0;  // 1 − kl_first / base.kl_first (bits > 0 only)
  double retention_reply = 0;
  double top1_agreement = 0;  // share of reply positions where M's most likely token is the fused model's
  size_t flipped = 0;  // decisions that differ from the fused model's
  size_t correct = 0;  // decisions that match the suite's expectation
};

// MoE models (issue 16): how far a width's routing drifts from the fused model's on the same tokens
// (teacher-forced on the fused model's prompts and replies), with the routers pinned at 8 bits (what
// quantize does) and quantized at the width like everything else.
struct RoutingDrift {
  int bits = 0;
  double top1_pinned = 0, jaccard_pinned = 0;      // routers at 8 bits / group 64
  double top1_quantized = 0, jaccard_quantized = 0;  // routers at the width
};

struct OutputRetention {
  size_t queries = 0;
  size_t fused_correct = 0;  // the fused float model's own decisions that match the suite
  size_t reply_tokens = 0;   // total reference tokens over all queries
  ModelDivergence base;
  std::vector<ModelDivergence> quantized;  // in options.bits order
  std::vector<RoutingDrift> routing;       // MoE only, in options.bits order
  double seconds = 0;
};

OutputRetention analyze_output_retention(const OutputRetentionOptions& options, ThreadPool& pool);

// The same measures for models the caller already has (mixed-precision plans, recipes, other tools'
// files), labelled by name, instead of widths quantized here (options.bits and work_dir are unused).
OutputRetention compare_outputs(const OutputRetentionOptions& options,
                                const std::vector<std::pair<std::string, std::string>>& models, ThreadPool& pool);

}  // namespace quantlab::analysis
