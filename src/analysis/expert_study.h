// What removing experts does to a MoE model's outputs on a suite (issue 16): the model's own greedy
// replies are recorded once; then, with some experts disabled in the session (exactly what pruning
// them does, model::Session::disable_experts), every prompt + reply is run teacher-forced and compared
// position by position with the full model: mean KL(full ‖ pruned) over all positions, and the share of
// queries whose tool-or-answer decision (the greedy first reply token: `<tool_call>` or not) matches
// the suite's expectation. Used to check that REAP saliency ranks experts as leaving them out does.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "analysis/expert_profile.h"
#include "chat/chat_model.h"
#include "core/thread_pool.h"

namespace quantlab::analysis {

struct AblationOutcome {
  double kl = 0;                 // mean KL(full ‖ ablated) over every position of every stream
  double decision_accuracy = 0;  // share of queries decided as the suite expects
};

class ExpertStudy {
 public:
  // Runs the full model once over the suite (greedy replies, logits of every position kept).
  ExpertStudy(const std::string& model_dir, const std::string& suite_path, const std::string& tools_path,
              size_t max_tokens, ThreadPool& pool);
  ~ExpertStudy();

  // With `disabled` experts (by layer) never routed to.
  AblationOutcome evaluate(const std::map<int64_t, std::vector<int32_t>>& disabled);
  const AblationOutcome& full() const { return full_; }

 private:
  struct Data;
  std::unique_ptr<Data> d_;
  AblationOutcome full_;
};

// How well an expert ranking predicts what leaving experts out costs: per MoE layer, the Spearman
// correlation between each expert's score and the KL of leaving that expert alone out; and the KL and
// decision accuracy of removing the lower-scored half of every layer. Rankings: REAP's mean saliency
// (weight × ‖output‖ averaged over the tokens routed to the expert), the summed saliency (the same
// summed, so frequency counts), and the token count.
struct RankingCheck {
  std::string name;              // "saliency", "total_saliency", "count"
  std::vector<double> spearman;  // per MoE layer, in profile order
  AblationOutcome half_removed;  // the lower-scored half of every layer removed
};

struct SaliencyCheck {
  std::vector<RankingCheck> rankings;
  AblationOutcome most_salient_removed;  // the higher-saliency half removed instead
  AblationOutcome random_mean;           // random halves, mean of random_draws
  int random_draws = 0;
};

SaliencyCheck check_saliency(const ExpertProfile& profile, ExpertStudy& study, int random_draws, uint64_t seed);

}  // namespace quantlab::analysis
