#include "analysis/reference_replies.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/error.h"
#include "eval/suite.h"
#include "text/tool_calls.h"

namespace quantlab::analysis {

std::vector<ReferenceQuery> encode_suite(const chat::ChatModel& fused, const std::string& suite_path,
                                         const std::string& tools_path, size_t limit) {
  std::optional<eval::ToolSet> tools;
  if (!tools_path.empty()) tools = eval::load_tools(tools_path);
  const eval::Suite suite = eval::load_suite(suite_path, tools ? &*tools : nullptr);
  if (suite.queries.empty()) fail_input("{}: the suite has no queries", suite_path);
  std::vector<ReferenceQuery> out;
  for (const auto& q : suite.queries) {
    if (limit && out.size() == limit) break;
    text::ChatRequest request;
    request.messages = q.messages;
    if (tools) request.tools = tools->schemas;
    request.extra = {{"enable_thinking", false}};
    out.push_back({fused.encode_chat(request), q.expect_tool, {}, {}, false});
  }
  return out;
}

bool decides_tool(const chat::ChatModel& fused, std::span<const int32_t> reply, size_t decision_tokens) {
  const size_t n = std::min(reply.size(), decision_tokens);
  return text::starts_with_tool_call(fused.tokenizer().decode(reply.first(n)));
}

size_t context_needed(const std::vector<ReferenceQuery>& queries, size_t max_tokens) {
  size_t n = 0;
  for (const auto& q : queries) n = std::max(n, q.prompt.size() + max_tokens + 1);
  return n;
}

std::vector<float> teacher_forced_logits(model::Session& session, const ReferenceQuery& q) {
  session.reset();
  std::vector<float> logits = session.forward(q.prompt);
  if (q.reply.size() > 1) {
    const std::vector<float> rest = session.forward(std::span(q.reply).first(q.reply.size() - 1), true);
    logits.insert(logits.end(), rest.begin(), rest.end());
  }
  return logits;
}

void record_reference(const chat::ChatModel& fused, std::vector<ReferenceQuery>& queries, size_t max_tokens,
                      size_t decision_tokens, ThreadPool& pool) {
  model::Session session(fused.model(), pool, {context_needed(queries, max_tokens), 512});
  for (auto& q : queries) {
    session.reset();
    q.reply = chat::respond(session, q.prompt, chat::greedy_options(fused, max_tokens)).tokens;
    if (q.reply.empty())
      fail_input("{}: the fused model produced no reply token (--max-tokens 0?)", fused.model().dir());
    q.reply_logits = teacher_forced_logits(session, q);
    q.fused_tool = decides_tool(fused, q.reply, decision_tokens);
  }
}

QueryKl reply_kl(model::Session& session, const ReferenceQuery& q, size_t vocab, const std::string& model_name) {
  const std::vector<float> logits = teacher_forced_logits(session, q);
  if (logits.size() != q.reply_logits.size())
    fail_input("{}: vocabulary of {} tokens differs from the fused model's", model_name, vocab);
  QueryKl kl;
  for (size_t i = 0; i < q.reply.size(); ++i) {
    const double k = kl_divergence_from_logits(q.reply_logits.data() + i * vocab, logits.data() + i * vocab, vocab);
    if (i == 0) kl.first = k;
    kl.mean += k;
    const float* p = q.reply_logits.data() + i * vocab;
    const float* m = logits.data() + i * vocab;
    kl.top1_agree += std::max_element(p, p + vocab) - p == std::max_element(m, m + vocab) - m;
  }
  kl.mean /= static_cast<double>(q.reply.size());
  return kl;
}

double kl_divergence_from_logits(const float* p_logits, const float* q_logits, size_t n) {
  const double p_max = *std::max_element(p_logits, p_logits + n), q_max = *std::max_element(q_logits, q_logits + n);
  double p_sum = 0, q_sum = 0;
  for (size_t i = 0; i < n; ++i) {
    p_sum += std::exp(double(p_logits[i]) - p_max);
    q_sum += std::exp(double(q_logits[i]) - q_max);
  }
  const double p_log_z = p_max + std::log(p_sum), q_log_z = q_max + std::log(q_sum);
  double kl = 0;
  for (size_t i = 0; i < n; ++i) {
    const double log_p = p_logits[i] - p_log_z, log_q = q_logits[i] - q_log_z;
    kl += std::exp(log_p) * (log_p - log_q);
  }
  return std::max(kl, 0.0);  // rounding can leave -1e-17 for identical distributions
}

}  // namespace quantlab::analysis
