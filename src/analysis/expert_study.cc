#include "analysis/expert_study.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "analysis/output_retention.h"
#include "analysis/suite_prompts.h"
#include "core/error.h"
#include "eval/stats.h"
#include "eval/suite.h"
#include "model/session.h"

namespace quantlab::analysis {

struct ExpertStudy::Data {
  std::unique_ptr<chat::ChatModel> chat;
  ThreadPool* pool = nullptr;
  size_t vocab = 0;
  std::vector<std::vector<int32_t>> streams;  // prompt + reply without its last token
  std::vector<size_t> prompt_lengths;
  std::vector<bool> expect_tool;
  std::vector<std::vector<float>> logits;     // the full model's, [positions, vocab] per stream
  int32_t tool_call = -1;
  size_t longest = 1;
};

namespace {

std::vector<float> run_stream(model::Session& s, const std::vector<int32_t>& stream) {
  s.reset();
  return s.forward(stream, /*all_logits=*/true);
}

// The greedy first reply token: the argmax of the last prompt position.
bool decides_tool(const float* row, size_t vocab, int32_t tool_call) {
  return static_cast<int32_t>(std::max_element(row, row + vocab) - row) == tool_call;
}

}  // namespace

ExpertStudy::ExpertStudy(const std::string& model_dir, const std::string& suite_path, const std::string& tools_path,
                         size_t max_tokens, ThreadPool& pool)
    : d_(std::make_unique<Data>()) {
  d_->chat = chat::ChatModel::open(model_dir);
  d_->pool = &pool;
  const auto& c = d_->chat->config();
  if (!c.is_moe()) fail(ErrorKind::kUsage, "{}: not a mixture-of-experts model", model_dir);
  d_->vocab = static_cast<size_t>(c.vocab_size);
  d_->tool_call = d_->chat->tokenizer().token_id("<tool_call>").value_or(-1);
  std::optional<eval::ToolSet> tools;
  if (!tools_path.empty()) tools = eval::load_tools(tools_path);
  for (const auto& q : eval::load_suite(suite_path, tools ? &*tools : nullptr).queries) d_->expect_tool.push_back(q.expect_tool);
  const auto prompts = encode_suite_prompts(suite_path, tools_path, *d_->chat);
  for (const auto& p : prompts) d_->longest = std::max(d_->longest, p.size() + max_tokens + 1);
  model::Session session(d_->chat->model(), pool, {d_->longest, 512});
  for (const auto& prompt : prompts) {
    session.reset();
    const auto r = chat::respond(session, prompt, chat::greedy_options(*d_->chat, max_tokens));
    std::vector<int32_t> stream(prompt.begin(), prompt.end());
    if (!r.tokens.empty()) stream.insert(stream.end(), r.tokens.begin(), r.tokens.end() - 1);
    d_->prompt_lengths.push_back(prompt.size());
    d_->logits.push_back(run_stream(session, stream));
    d_->streams.push_back(std::move(stream));
  }
  full_ = evaluate({});
}

ExpertStudy::~ExpertStudy() = default;

AblationOutcome ExpertStudy::evaluate(const std::map<int64_t, std::vector<int32_t>>& disabled) {
  model::Session session(d_->chat->model(), *d_->pool, {d_->longest, 512});
  for (const auto& [layer, experts] : disabled) session.disable_experts(static_cast<size_t>(layer), experts);
  double kl = 0;
  size_t positions = 0, right = 0;
  for (size_t q = 0; q < d_->streams.size(); ++q) {
    const std::vector<float> logits = run_stream(session, d_->streams[q]);
    const std::vector<float>& full = d_->logits[q];
    const size_t n = d_->streams[q].size(), V = d_->vocab;
    for (size_t i = 0; i < n; ++i) kl += kl_divergence_from_logits(full.data() + i * V, logits.data() + i * V, V);
    positions += n;
    right += decides_tool(logits.data() + (d_->prompt_lengths[q] - 1) * V, V, d_->tool_call) == d_->expect_tool[q];
  }
  return {positions ? kl / static_cast<double>(positions) : 0.0,
          d_->streams.empty() ? 0.0 : static_cast<double>(right) / static_cast<double>(d_->streams.size())};
}

namespace {

std::map<int64_t, std::vector<int32_t>> remove_from_each_layer(const ExpertProfile& p,
                                                               const std::function<std::vector<int32_t>(const LayerUse&)>& pick) {
  std::map<int64_t, std::vector<int32_t>> out;
  for (const LayerUse& l : p.layers) out[l.layer] = pick(l);
  return out;
}

double score(const ExpertUse& u, const std::string& ranking) {
  if (ranking == "saliency") return u.mean_saliency();
  if (ranking == "total_saliency") return u.saliency;
  return static_cast<double>(u.count);
}

// Experts of a layer ordered by a ranking's score, lowest first.
std::vector<int32_t> ordered(const LayerUse& l, const std::string& ranking) {
  std::vector<int32_t> ids(l.experts.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    return score(l.experts[static_cast<size_t>(a)][0], ranking) < score(l.experts[static_cast<size_t>(b)][0], ranking);
  });
  return ids;
}

}  // namespace

SaliencyCheck check_saliency(const ExpertProfile& p, ExpertStudy& study, int random_draws, uint64_t seed) {
  SaliencyCheck c;
  std::vector<std::vector<double>> leave_one_out;  // [layer slot][expert]
  for (const LayerUse& l : p.layers) {
    leave_one_out.emplace_back();
    for (size_t e = 0; e < l.experts.size(); ++e)
      leave_one_out.back().push_back(study.evaluate({{l.layer, {static_cast<int32_t>(e)}}}).kl);
  }
  const size_t half = static_cast<size_t>(p.experts) / 2;
  for (const std::string ranking : {"saliency", "total_saliency", "count"}) {
    RankingCheck r;
    r.name = ranking;
    for (size_t i = 0; i < p.layers.size(); ++i) {
      std::vector<double> scores;
      for (const auto& e : p.layers[i].experts) scores.push_back(score(e[0], ranking));
      r.spearman.push_back(eval::spearman(scores, leave_one_out[i]));
    }
    r.half_removed = study.evaluate(remove_from_each_layer(p, [&](const LayerUse& l) {
      auto ids = ordered(l, ranking);
      ids.resize(half);
      return ids;
    }));
    c.rankings.push_back(std::move(r));
  }
  c.most_salient_removed = study.evaluate(remove_from_each_layer(p, [&](const LayerUse& l) {
    auto ids = ordered(l, "saliency");
    return std::vector<int32_t>(ids.end() - static_cast<std::ptrdiff_t>(half), ids.end());
  }));
  std::mt19937_64 rng(seed);
  c.random_draws = random_draws;
  for (int d = 0; d < random_draws; ++d) {
    const AblationOutcome o = study.evaluate(remove_from_each_layer(p, [&](const LayerUse& l) {
      std::vector<int32_t> ids(l.experts.size());
      std::iota(ids.begin(), ids.end(), 0);
      std::shuffle(ids.begin(), ids.end(), rng);
      ids.resize(half);
      return ids;
    }));
    c.random_mean.kl += o.kl / random_draws;
    c.random_mean.decision_accuracy += o.decision_accuracy / random_draws;
  }
  return c;
}

}  // namespace quantlab::analysis
