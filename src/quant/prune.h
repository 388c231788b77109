// Pruning MoE experts (issue 16, `quantlab prune`): keeps the chosen experts of every MoE layer and
// writes a complete model whose config.json says the new expert count. Router rows and expert tensors
// are sliced — per-expert Hugging Face tensors renumbered, or mlx-lm's stacked switch_mlp tensors
// (codes, scales and biases) cut along the expert axis — never re-quantized, so a quantized model
// stays bit-exact in what it keeps. num_experts_per_tok is capped at the kept count.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/safetensors_writer.h"

namespace quantlab::quant {

// Experts kept per MoE layer (by layer index), each list in ascending id order.
using ExpertsKept = std::map<int64_t, std::vector<int64_t>>;

struct PruneOptions {
  bool overwrite = false;
  uint64_t max_shard_bytes = io::kDefaultMaxShardBytes;
};

struct PruneReport {
  size_t moe_layers = 0;
  int64_t experts_before = 0, experts_after = 0;
  int64_t experts_per_token_before = 0, experts_per_token_after = 0;
  uint64_t tensor_bytes_before = 0, tensor_bytes_after = 0;
};

// Throws Error(kUsage) for a dense model, a MoE layer missing from `kept`, unequal counts across
// layers, ids out of range or repeated, or keeping none; Error(kInvalidInput) naming the tensor when
// an expert tensor is missing. Nothing is written then.
PruneReport prune_experts(const std::string& in_dir, const std::string& out_dir, const ExpertsKept& kept,
                          const PruneOptions& options);

}  // namespace quantlab::quant
