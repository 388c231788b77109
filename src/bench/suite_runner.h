// Runs a query suite on one loaded model: renders each prompt with the model's chat template and the
// suite's tools, decodes greedily, times every query, and scores the replies of the first run. Later
// runs only measure speed (and check the replies repeat: greedy decoding is deterministic).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "chat/chat_model.h"
#include "core/thread_pool.h"
#include "eval/report_schema.h"
#include "eval/suite.h"
#include "model/generation.h"
#include "model/session.h"

namespace quantlab::bench {

struct SuiteOptions {
  size_t max_tokens = 64;
  size_t runs = 1;
  bool thinking = false;  // enable_thinking for the chat template; the decision then skips the think block
};

struct SuiteOutcome {
  std::vector<eval::QueryResult> queries;  // first run, scored
  eval::SpeedResult speed;
  eval::HarnessResult harness;
};

// One greedy reply: the generated tokens (stop token included) and the logits after prefill.
struct GreedyReply {
  std::vector<int32_t> tokens;
  model::StopReason reason = model::StopReason::kMaxTokens;
  std::vector<float> first_logits;  // only when asked for
  double seconds = 0;               // prefill + decode + token choice
};

class SuiteRunner {
 public:
  SuiteRunner(const chat::ChatModel& chat, ThreadPool& pool, SuiteOptions options);

  // `label` names the model on the progress bar.
  SuiteOutcome run(const eval::Suite& suite, const eval::ToolSet& tools, const std::string& label);
  // The session of the last run (for its memory report). Valid after run().
  const model::Session& session() const { return *session_; }
  // Tokens of the longest rendered prompt of the last run: the largest prefill batch it pushed.
  size_t longest_prompt() const { return longest_prompt_; }

  // The prompt token ids of a query: chat template with tools and the generation prompt.
  std::vector<int32_t> render_prompt(const eval::Query& query, const eval::ToolSet& tools) const;
  GreedyReply generate_greedy(std::span<const int32_t> prompt, bool keep_first_logits);

 private:
  eval::QueryResult describe(const eval::Query& query, const eval::ToolSet& tools, const GreedyReply& reply,
                             size_t prompt_tokens) const;

  const chat::ChatModel& chat_;
  ThreadPool& pool_;
  SuiteOptions options_;
  std::optional<model::Session> session_;
  std::optional<int32_t> tool_call_id_;
  size_t longest_prompt_ = 0;
};

}  // namespace quantlab::bench
