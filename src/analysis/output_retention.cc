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
#include "analysis/reference_replies.h"
#include "io/model_config.h"
#include "quant/quantizer.h"
#include "text/tool_calls.h"

namespace quantlab::analysis {

namespace fs = std::filesystem;

namespace {

// The fused model, opened once through the chat layer, is the conversation's reference.
struct Conversation {
  const chat::ChatModel& fused;
  size_t decision_tokens = 12;

  bool decides_tool(std::span<const int32_t> reply) const {
    return analysis::decides_tool(fused, reply, decision_tokens);
  }
};

std::vector<int32_t> greedy_reply(model::Session& session, const ReferenceQuery& q, const Conversation& c,
                                  size_t max_tokens) {
  session.reset();
  return chat::respond(session, q.prompt, chat::greedy_options(c.fused, max_tokens)).tokens;
}

ModelDivergence compare_model(const std::string& dir, kernels::Compute compute, const std::vector<ReferenceQuery>& queries,
                              const OutputRetentionOptions& o, const Conversation& c, ThreadPool& pool) {
  const model::Model m = model::Model::load(dir, compute);
  model::Session session(m, pool, {context_needed(queries, std::max(o.max_tokens, o.decision_tokens)), 512});
  ModelDivergence d;
  for (const auto& q : queries) {
    const QueryKl kl = reply_kl(session, q, m.dims().vocab, dir);
    d.kl_first += kl.first;
    d.kl_reply += kl.mean;
    d.top1_agreement += static_cast<double>(kl.top1_agree);
    const bool tool = c.decides_tool(greedy_reply(session, q, c, c.decision_tokens));
    d.flipped += tool != q.fused_tool;
    d.correct += tool == q.expect_tool;
  }
  d.kl_first /= double(queries.size());
  d.kl_reply /= double(queries.size());
  size_t positions = 0;
  for (const auto& q : queries) positions += q.reply.size();
  d.top1_agreement /= static_cast<double>(std::max<size_t>(positions, 1));
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
  const std::unique_ptr<chat::ChatModel> fused = chat::ChatModel::open(o.fused_dir, o.fused_compute);
  const Conversation c{*fused, o.decision_tokens};
  std::vector<ReferenceQuery> queries = encode_suite(*fused, o.suite_path, o.tools_path);
  Progress progress("retention (outputs)", models.size() + 2, 0, o.show_progress);
  record_reference(*fused, queries, o.max_tokens, o.decision_tokens, pool);
  progress.advance(1, 0);
  OutputRetention r;
  r.queries = queries.size();
  for (const auto& q : queries) {
    r.fused_correct += q.fused_tool == q.expect_tool;
    r.reply_tokens += q.reply.size();
  }
  r.base = compare_model(o.base_dir, kernels::Compute::kExact, queries, o, c, pool);
  r.base.label = "base";
  progress.advance(1, 0);
  for (const ComparedModel& m : models) {
    const std::string dir = m.prepare();
    const auto compute = o.model_compute.find(m.label);
    ModelDivergence d = compare_model(dir, compute == o.model_compute.end() ? kernels::Compute::kExact : compute->second,
                                      queries, o, c, pool);
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
