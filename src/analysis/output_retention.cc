#include "analysis/output_retention.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <span>

#include "chat/chat_model.h"
#include "core/error.h"
#include "core/progress.h"
#include "eval/suite.h"
#include "model/model.h"
#include "model/session.h"
#include "analysis/expert_profile.h"
#include "io/model_config.h"
#include "quant/quantizer.h"
#include "text/tool_calls.h"

namespace quantlab::analysis {

namespace fs = std::filesystem;

namespace {

struct PreparedQuery {
  std::vector<int32_t> prompt;
  bool expect_tool = false;
  std::vector<int32_t> reply;       // the fused model's greedy reply (the reference)
  std::vector<float> reply_logits;  // fused logits predicting each reply token, [reply.size(), vocab]
  bool fused_tool = false;          // the fused model's decision
};

// Everything that turns a suite into token ids and replies into decisions.
// The fused model, opened once through the chat layer, is the conversation's reference.
struct Conversation {
  const chat::ChatModel& fused;
  size_t decision_tokens = 12;

  bool decides_tool(std::span<const int32_t> reply) const {
    const size_t n = std::min(reply.size(), decision_tokens);
    return text::starts_with_tool_call(fused.tokenizer().decode(reply.first(n)));
  }
};

// Logits of the positions that predict each reply token, run teacher-forced after the prompt.
std::vector<float> teacher_forced_logits(model::Session& session, const PreparedQuery& q) {
  session.reset();
  std::vector<float> logits = session.forward(q.prompt);
  if (q.reply.size() > 1) {
    const std::vector<float> rest = session.forward(std::span(q.reply).first(q.reply.size() - 1), true);
    logits.insert(logits.end(), rest.begin(), rest.end());
  }
  return logits;
}

std::vector<int32_t> greedy_reply(model::Session& session, const PreparedQuery& q, const Conversation& c,
                                  size_t max_tokens) {
  session.reset();
  return chat::respond(session, q.prompt, chat::greedy_options(c.fused, max_tokens)).tokens;
}

size_t context_needed(const std::vector<PreparedQuery>& queries, size_t max_tokens) {
  size_t n = 0;
  for (const auto& q : queries) n = std::max(n, q.prompt.size() + max_tokens + 1);
  return n;
}

std::vector<PreparedQuery> prepare_queries(const OutputRetentionOptions& o, const Conversation& c) {
  std::optional<eval::ToolSet> tools;
  if (!o.tools_path.empty()) tools = eval::load_tools(o.tools_path);
  const eval::Suite suite = eval::load_suite(o.suite_path, tools ? &*tools : nullptr);
  if (suite.queries.empty()) fail_input("{}: the suite has no queries", o.suite_path);
  std::vector<PreparedQuery> out;
  for (const auto& q : suite.queries) {
    text::ChatRequest request;
    request.messages = q.messages;
    if (tools) request.tools = tools->schemas;
    request.extra = {{"enable_thinking", false}};
    out.push_back({c.fused.encode_chat(request), q.expect_tool, {}, {}, false});
  }
  return out;
}

// Runs the fused float model: its greedy replies become the reference, its logits the yardstick.
void run_reference(const OutputRetentionOptions& o, const Conversation& c, std::vector<PreparedQuery>& queries,
                   ThreadPool& pool) {
  model::Session session(c.fused.model(), pool, {context_needed(queries, o.max_tokens), 512});
  for (auto& q : queries) {
    q.reply = greedy_reply(session, q, c, o.max_tokens);
    if (q.reply.empty()) fail_input("{}: the fused model produced no reply token (--max-tokens 0?)", o.fused_dir);
    q.reply_logits = teacher_forced_logits(session, q);
    q.fused_tool = c.decides_tool(q.reply);
  }
}

ModelDivergence compare_model(const std::string& dir, const std::vector<PreparedQuery>& queries,
                              const OutputRetentionOptions& o, const Conversation& c, ThreadPool& pool) {
  const model::Model m = model::Model::load(dir);
  model::Session session(m, pool, {context_needed(queries, std::max(o.max_tokens, o.decision_tokens)), 512});
  const size_t vocab = m.dims().vocab;
  ModelDivergence d;
  for (const auto& q : queries) {
    const std::vector<float> logits = teacher_forced_logits(session, q);
    if (logits.size() != q.reply_logits.size())
      fail_input("{}: vocabulary of {} tokens differs from the fused model's", dir, vocab);
    double sum = 0;
    for (size_t i = 0; i < q.reply.size(); ++i) {
      const double kl = kl_divergence_from_logits(q.reply_logits.data() + i * vocab, logits.data() + i * vocab, vocab);
      if (i == 0) d.kl_first += kl;
      sum += kl;
    }
    d.kl_reply += sum / double(q.reply.size());
    const bool tool = c.decides_tool(greedy_reply(session, q, c, c.decision_tokens));
    d.flipped += tool != q.fused_tool;
    d.correct += tool == q.expect_tool;
  }
  d.kl_first /= double(queries.size());
  d.kl_reply /= double(queries.size());
  return d;
}

// `routers_too`: the MoE routers at the width as well (an override past the 8-bit router rule).
std::string quantize_into_work_dir(const OutputRetentionOptions& o, int bits, ThreadPool& pool, bool routers_too = false) {
  const std::string name = "q" + std::to_string(bits) + "-g" + std::to_string(o.group_size) + (routers_too ? "-routers" : "");
  const std::string dir = (fs::path(o.work_dir) / name).string();
  if (o.keep_models && fs::exists(fs::path(dir) / "config.json")) return dir;  // kept from an earlier run
  quant::QuantizeOptions q;
  q.plan.bits = bits;
  q.plan.group_size = o.group_size;
  if (routers_too) q.plan.overrides.push_back(quant::parse_module_override(fmt::format("mlp\\.gate$={}", bits), o.group_size));
  q.overwrite = true;
  q.show_progress = false;
  quant::quantize_model(o.fused_dir, dir, q, pool);
  return dir;
}

double retention(double kl_quant, double kl_base) {
  return kl_base > 0 ? 1.0 - kl_quant / kl_base : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

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

namespace {

// The fused model's reference replies, then the base; `models` (label, how to get its directory, what
// to do after) are compared in order.
struct ComparedModel {
  std::string label;
  int bits = 0;
  std::function<std::string()> prepare;
  std::function<void(const std::string&)> done;
};

OutputRetention compare_all(const OutputRetentionOptions& o, const std::vector<ComparedModel>& models, ThreadPool& pool) {
  const auto start = std::chrono::steady_clock::now();
  const std::unique_ptr<chat::ChatModel> fused = chat::ChatModel::open(o.fused_dir);
  const Conversation c{*fused, o.decision_tokens};
  std::vector<PreparedQuery> queries = prepare_queries(o, c);
  Progress progress("retention (outputs)", models.size() + 2, 0, o.show_progress);
  run_reference(o, c, queries, pool);
  progress.advance(1, 0);
  OutputRetention r;
  r.queries = queries.size();
  for (const auto& q : queries) {
    r.fused_correct += q.fused_tool == q.expect_tool;
    r.reply_tokens += q.reply.size();
  }
  r.base = compare_model(o.base_dir, queries, o, c, pool);
  r.base.label = "base";
  progress.advance(1, 0);
  for (const ComparedModel& m : models) {
    const std::string dir = m.prepare();
    ModelDivergence d = compare_model(dir, queries, o, c, pool);
    if (m.done) m.done(dir);
    d.label = m.label;
    d.bits = m.bits;
    d.retention_first = retention(d.kl_first, r.base.kl_first);
    d.retention_reply = retention(d.kl_reply, r.base.kl_reply);
    r.quantized.push_back(d);
    progress.advance(1, 0);
  }
  progress.finish();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace

namespace {

// Routing of every width against the fused model's, routers pinned (the directories the outputs were
// compared on, `pinned_dirs` in o.bits order) and quantized (expert_profile.h).
std::vector<RoutingDrift> routing_drift(const OutputRetentionOptions& o, const std::vector<std::string>& pinned_dirs,
                                        ThreadPool& pool) {
  ExpertProfileOptions po;
  po.model_dir = o.fused_dir;
  po.suite_path = o.suite_path;
  po.tools_path = o.tools_path;
  po.max_tokens = o.max_tokens;
  po.show_progress = false;
  for (size_t i = 0; i < o.bits.size(); ++i) {
    po.compare.push_back({"pinned", pinned_dirs[i]});
    po.compare.push_back({"quantized", quantize_into_work_dir(o, o.bits[i], pool, true)});
  }
  const ExpertProfile p = profile_experts(po, pool);
  std::vector<RoutingDrift> drift;
  for (size_t i = 0; i < o.bits.size(); ++i) {
    const RoutingAgreement &pinned = p.compare[2 * i], &quantized = p.compare[2 * i + 1];
    drift.push_back({o.bits[i], pinned.mean_top1(), pinned.mean_jaccard(), quantized.mean_top1(),
                     quantized.mean_jaccard()});
  }
  if (!o.keep_models)
    for (const NamedModel& m : po.compare) fs::remove_all(m.dir);
  return drift;
}

}  // namespace

OutputRetention analyze_output_retention(const OutputRetentionOptions& o, ThreadPool& pool) {
  if (o.work_dir.empty()) fail(ErrorKind::kUsage, "output retention needs a work directory for the quantized models");
  fs::create_directories(o.work_dir);
  const bool moe = io::load_model_config(o.fused_dir).is_moe();
  std::vector<std::string> kept_for_routing;  // MoE: the widths' directories, read again for routing drift
  std::vector<ComparedModel> widths;
  for (int bits : o.bits)
    widths.push_back({std::to_string(bits) + "-bit", bits, [&o, &pool, bits] { return quantize_into_work_dir(o, bits, pool); },
                      [&o, moe, &kept_for_routing](const std::string& dir) {
                        if (moe) kept_for_routing.push_back(dir);
                        else if (!o.keep_models) fs::remove_all(dir);
                      }});
  OutputRetention r = compare_all(o, widths, pool);
  if (moe) r.routing = routing_drift(o, kept_for_routing, pool);
  return r;
}

OutputRetention compare_outputs(const OutputRetentionOptions& o,
                                const std::vector<std::pair<std::string, std::string>>& models, ThreadPool& pool) {
  std::vector<ComparedModel> named;
  for (const auto& [label, dir] : models) named.push_back({label, 0, [dir = dir] { return dir; }, {}});
  return compare_all(o, named, pool);
}

}  // namespace quantlab::analysis
