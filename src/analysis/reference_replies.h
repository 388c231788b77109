// The yardstick of every output-side measure: the fused float model's greedy replies to a suite's
// prompts and its logits along them. Another model (the base, a quantized file, a model with one module
// swapped for a probe) is run teacher-forced on prompt + reply and its next-token distributions are
// compared with the fused model's by KL(fused ‖ model). Used by output retention and divergence
// (output_retention.h) and by the measured module gains of sensitivity (module_gain.h).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "chat/chat_model.h"
#include "core/thread_pool.h"
#include "model/session.h"

namespace quantlab::analysis {

struct ReferenceQuery {
  std::vector<int32_t> prompt;
  bool expect_tool = false;
  std::vector<int32_t> reply;       // the fused model's greedy reply (the reference)
  std::vector<float> reply_logits;  // fused logits predicting each reply token, [reply.size(), vocab]
  bool fused_tool = false;          // the fused model's decision
};

// KL of one model's reply distributions from the fused model's on one query (nats).
struct QueryKl {
  double first = 0;  // at the first reply token
  double mean = 0;   // averaged over the reply's positions
  size_t top1_agree = 0;  // reply positions where both models' most likely token is the same
};

// The suite's queries (with the tools rendered when tools_path is not empty) as chat prompts of the
// fused model; `limit` > 0 keeps the first `limit` queries. Throws Error(kInvalidInput) for an empty suite.
std::vector<ReferenceQuery> encode_suite(const chat::ChatModel& fused, const std::string& suite_path,
                                         const std::string& tools_path, size_t limit = 0);

// Whether a reply starts with a tool call, from its first `decision_tokens` tokens.
bool decides_tool(const chat::ChatModel& fused, std::span<const int32_t> reply, size_t decision_tokens);

// Fills every query's reply (greedy, up to max_tokens), reply logits and decision from the fused model.
void record_reference(const chat::ChatModel& fused, std::vector<ReferenceQuery>& queries, size_t max_tokens,
                      size_t decision_tokens, ThreadPool& pool);

// The context a session needs for the longest prompt plus `max_tokens` generated tokens.
size_t context_needed(const std::vector<ReferenceQuery>& queries, size_t max_tokens);

// Logits of the positions that predict each reply token, run teacher-forced after the prompt.
std::vector<float> teacher_forced_logits(model::Session& session, const ReferenceQuery& q);

// KL(fused ‖ the session's model) along q's reply. Throws Error(kInvalidInput) naming `model_name` when
// the vocabularies differ.
QueryKl reply_kl(model::Session& session, const ReferenceQuery& q, size_t vocab, const std::string& model_name);

// KL(P ‖ Q) in nats between the softmax distributions of two logit vectors (double precision).
double kl_divergence_from_logits(const float* p_logits, const float* q_logits, size_t n);

}  // namespace quantlab::analysis
