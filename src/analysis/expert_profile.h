// Which experts a MoE model uses on the user's task (issue 16, `quantlab experts`): the engine runs a
// suite's prompts and the model's own greedy replies (and/or plain text) and, through the routing hook,
// counts per layer and expert the tokens routed, their summed router weight and REAP's saliency (the
// mean over routed tokens of router weight × ‖expert output‖₂; Lasby et al., "REAP", ICLR 2026) —
// separately for prompt tokens, reply tokens, and replies that call a tool or answer directly.
// With models to compare, each is run teacher-forced on the reference's own token stream and its
// routing compared token by token: top-1 agreement and the Jaccard overlap of the top-k sets per layer.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "quant/prune.h"

namespace quantlab::analysis {

// Where the tokens counted came from.
enum class TokenSource { kAll, kPrompt, kReply, kToolReply, kDirectReply };
inline constexpr size_t kTokenSources = 5;
std::string_view token_source_name(TokenSource s);  // "all", "prompt", "reply", "tool_reply", "direct_reply"

struct ExpertUse {
  uint64_t count = 0;    // tokens routed to the expert
  double weight = 0;     // summed router (mixing) weight
  double saliency = 0;   // summed weight × ‖output‖₂; the mean is saliency / count
  double mean_saliency() const { return count ? saliency / static_cast<double>(count) : 0.0; }
};

struct LayerUse {
  int64_t layer = 0;
  std::array<uint64_t, kTokenSources> tokens{};                   // tokens through the layer, per source
  std::vector<std::array<ExpertUse, kTokenSources>> experts;     // [expert][source]
};

struct RoutingAgreement {
  std::string name, dir;
  uint64_t tokens = 0;
  std::vector<double> top1;     // per MoE layer (in profile order): share of tokens with the same first expert
  std::vector<double> jaccard;  // per MoE layer: mean |A ∩ B| / |A ∪ B| of the top-k sets
  double mean_top1() const;
  double mean_jaccard() const;
};

struct ExpertProfile {
  std::string model, model_type;
  int64_t experts = 0, experts_per_token = 0;
  uint64_t tokens = 0;           // tokens through the layers
  size_t queries = 0;
  std::vector<LayerUse> layers;  // MoE layers only
  std::vector<RoutingAgreement> compare;
};

struct NamedModel {
  std::string name, dir;
};

struct ExpertProfileOptions {
  std::string model_dir;
  std::string suite_path, tools_path, text_path;
  size_t max_tokens = 64;
  size_t text_chunk = 256;
  std::vector<NamedModel> compare;
  bool show_progress = true;
};

// Error(kUsage) for a dense model or no inputs; Error(kInvalidInput) naming both directories when a
// model to compare has other layers, experts or vocabulary.
ExpertProfile profile_experts(const ExpertProfileOptions& options, ThreadPool& pool);

nlohmann::ordered_json profile_json(const ExpertProfile& profile);
// Reads experts.json back; Error(kInvalidInput) naming the file and field.
ExpertProfile read_profile(const std::string& path);

// How experts are ranked for pruning.
enum class PruneRanking { kSaliency, kCount };
// The experts to keep per layer: the `keep` highest ranked (all sources); ties to the lower id.
quant::ExpertsKept choose_experts(const ExpertProfile& profile, size_t keep, PruneRanking by);
// The fewest experts that keep every expert any token was routed to, in the layer using the most.
size_t used_expert_count(const ExpertProfile& profile);
// Error(kInvalidInput) naming the profile when it was recorded on another model (layers, experts).
void check_profile_matches(const ExpertProfile& profile, const std::string& profile_path,
                           const std::string& model_dir);

}  // namespace quantlab::analysis
