#include "analysis/expert_profile.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "analysis/suite_prompts.h"
#include "chat/chat_model.h"
#include "core/error.h"
#include "core/progress.h"
#include "model/session.h"

namespace quantlab::analysis {

namespace {

// Counts one model's routing: prompt tokens go straight into the profile; a reply's tokens wait in
// `pending_` until the reply is known to call a tool or not.
class UseCounter {
 public:
  UseCounter(const io::ModelConfig& c, ExpertProfile& p) : profile_(p) {
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      if (!c.is_moe_layer(l)) continue;
      slot_of_layer_.resize(static_cast<size_t>(l) + 1, SIZE_MAX);
      slot_of_layer_[static_cast<size_t>(l)] = p.layers.size();
      LayerUse use;
      use.layer = l;
      use.experts.resize(static_cast<size_t>(c.num_experts));
      p.layers.push_back(std::move(use));
    }
    pending_ = p.layers;
  }

  void start(size_t prompt_tokens) { prompt_tokens_ = prompt_tokens; }

  void on_routing(const model::RoutingEvent& e) {
    const size_t slot = slot_of_layer_.at(e.layer), k = e.experts_per_token;
    for (size_t t = 0; t < e.tokens; ++t) {
      const bool prompt = e.first_position + t < prompt_tokens_;
      LayerUse& into = prompt ? profile_.layers[slot] : pending_[slot];
      add_token(into, prompt ? TokenSource::kPrompt : TokenSource::kReply);
      for (size_t j = 0; j < k; ++j) {
        const size_t row = t * k + j;
        const float* out = e.expert_outputs.data() + row * e.hidden;
        double norm = 0;
        for (size_t h = 0; h < e.hidden; ++h) norm += double(out[h]) * out[h];
        const double w = e.weights[row];
        auto& use = into.experts[static_cast<size_t>(e.chosen[row])];
        for (TokenSource s : {TokenSource::kAll, prompt ? TokenSource::kPrompt : TokenSource::kReply}) {
          ExpertUse& u = use[static_cast<size_t>(s)];
          u.count += 1;
          u.weight += w;
          u.saliency += w * std::sqrt(norm);
        }
      }
    }
  }

  // The reply is over: its tokens count as reply tokens, and as tool or direct ones.
  void finish_reply(bool called_tool) {
    const auto kind = static_cast<size_t>(called_tool ? TokenSource::kToolReply : TokenSource::kDirectReply);
    for (size_t i = 0; i < pending_.size(); ++i) {
      LayerUse& p = pending_[i];
      LayerUse& into = profile_.layers[i];
      for (size_t s : {size_t(0), static_cast<size_t>(TokenSource::kReply)}) into.tokens[s] += p.tokens[s];
      into.tokens[kind] += p.tokens[static_cast<size_t>(TokenSource::kReply)];
      for (size_t e = 0; e < p.experts.size(); ++e) {
        const ExpertUse& r = p.experts[e][static_cast<size_t>(TokenSource::kReply)];
        for (size_t s : {size_t(0), static_cast<size_t>(TokenSource::kReply), kind}) {
          ExpertUse& u = into.experts[e][s];
          u.count += r.count;
          u.weight += r.weight;
          u.saliency += r.saliency;
        }
        p.experts[e] = {};
      }
      p.tokens = {};
    }
  }

 private:
  static void add_token(LayerUse& into, TokenSource s) {
    into.tokens[0] += 1;
    into.tokens[static_cast<size_t>(s)] += 1;
  }
  ExpertProfile& profile_;
  std::vector<size_t> slot_of_layer_;
  std::vector<LayerUse> pending_;
  size_t prompt_tokens_ = 0;
};

// The first expert and the top-k set of every token of a stream, per MoE layer.
struct RoutingTrace {
  size_t k = 0;
  std::vector<std::vector<int32_t>> chosen;  // [MoE layer slot] -> [position * k + j]

  void record(const model::RoutingEvent& e, size_t slot) {
    auto& c = chosen.at(slot);
    const size_t end = (e.first_position + e.tokens) * e.experts_per_token;
    if (c.size() < end) c.resize(end, -1);
    std::copy(e.chosen.begin(), e.chosen.end(), c.begin() + static_cast<std::ptrdiff_t>(e.first_position * e.experts_per_token));
  }
};

void compare_traces(const RoutingTrace& ref, const RoutingTrace& other, RoutingAgreement& a,
                    std::vector<double>& top1_sum, std::vector<double>& jaccard_sum) {
  const size_t k = ref.k;
  for (size_t slot = 0; slot < ref.chosen.size(); ++slot) {
    const auto& x = ref.chosen[slot];
    const auto& y = other.chosen.at(slot);
    const size_t positions = std::min(x.size(), y.size()) / k;
    for (size_t p = 0; p < positions; ++p) {
      const int32_t* xa = x.data() + p * k;
      const int32_t* ya = y.data() + p * k;
      top1_sum[slot] += xa[0] == ya[0];
      size_t both = 0;
      for (size_t i = 0; i < k; ++i) both += std::find(ya, ya + k, xa[i]) != ya + k;
      jaccard_sum[slot] += static_cast<double>(both) / static_cast<double>(2 * k - both);
      if (slot == 0) a.tokens += 1;
    }
  }
}

void check_comparable(const chat::ChatModel& ref, const chat::ChatModel& other, const NamedModel& m) {
  const io::ModelConfig &a = ref.config(), &b = other.config();
  if (a.num_hidden_layers != b.num_hidden_layers || a.num_experts != b.num_experts ||
      a.num_experts_per_tok != b.num_experts_per_tok || a.vocab_size != b.vocab_size)
    fail_input("--compare {}: {} has {} layers, {} experts (top-{}), vocabulary {}; {} has {}, {} (top-{}), {}: "
               "routing compares token by token only between the same architecture",
               m.name, m.dir, b.num_hidden_layers, b.num_experts, b.num_experts_per_tok, b.vocab_size, ref.dir(),
               a.num_hidden_layers, a.num_experts, a.num_experts_per_tok, a.vocab_size);
}

// The reference's token streams (prompt + reply without its last token) and its routing on them.
struct Streams {
  std::vector<std::vector<int32_t>> tokens;
  std::vector<RoutingTrace> traces;
};

RoutingAgreement compare_model(const NamedModel& m, const chat::ChatModel& ref, const Streams& streams,
                               const std::vector<size_t>& slot_of_layer, size_t slots, ThreadPool& pool) {
  const auto other = chat::ChatModel::open(m.dir);
  check_comparable(ref, *other, m);
  RoutingAgreement a;
  a.name = m.name;
  a.dir = m.dir;
  std::vector<double> top1(slots, 0), jaccard(slots, 0);
  size_t longest = 1;
  for (const auto& s : streams.tokens) longest = std::max(longest, s.size() + 1);
  model::Session session(other->model(), pool, {longest, 512});
  for (size_t q = 0; q < streams.tokens.size(); ++q) {
    RoutingTrace trace{static_cast<size_t>(ref.config().num_experts_per_tok), std::vector<std::vector<int32_t>>(slots)};
    session.set_routing_hook([&](const model::RoutingEvent& e) { trace.record(e, slot_of_layer.at(e.layer)); });
    session.reset();
    session.forward(streams.tokens[q]);
    compare_traces(streams.traces[q], trace, a, top1, jaccard);
  }
  session.set_routing_hook({});
  const double n = static_cast<double>(std::max<uint64_t>(1, a.tokens));
  for (size_t s = 0; s < slots; ++s) a.top1.push_back(top1[s] / n), a.jaccard.push_back(jaccard[s] / n);
  return a;
}

bool starts_tool_call(const std::string& reply) {
  const size_t think = reply.find("</think>");
  const size_t from = think == std::string::npos ? 0 : think + 8;
  const size_t first = reply.find_first_not_of(" \n\r\t", from);
  return first != std::string::npos && reply.compare(first, 11, "<tool_call>") == 0;
}

}  // namespace

std::string_view token_source_name(TokenSource s) {
  constexpr std::string_view names[] = {"all", "prompt", "reply", "tool_reply", "direct_reply"};
  return names[static_cast<size_t>(s)];
}

double RoutingAgreement::mean_top1() const {
  return top1.empty() ? 0.0 : std::accumulate(top1.begin(), top1.end(), 0.0) / static_cast<double>(top1.size());
}
double RoutingAgreement::mean_jaccard() const {
  return jaccard.empty() ? 0.0
                         : std::accumulate(jaccard.begin(), jaccard.end(), 0.0) / static_cast<double>(jaccard.size());
}

ExpertProfile profile_experts(const ExpertProfileOptions& o, ThreadPool& pool) {
  if (o.suite_path.empty() && o.text_path.empty())
    fail(ErrorKind::kUsage, "experts needs --suite or --text (the tokens whose routing is counted)");
  const auto chat = chat::ChatModel::open(o.model_dir);
  const io::ModelConfig& c = chat->config();
  if (!c.is_moe()) fail(ErrorKind::kUsage, "{}: not a mixture-of-experts model: it has no experts to profile", o.model_dir);
  const auto prompts = encode_suite_prompts(o.suite_path, o.tools_path, *chat);
  const auto chunks = encode_text_chunks(o.text_path, o.text_chunk, *chat);
  ExpertProfile p;
  p.model = o.model_dir;
  p.model_type = c.model_type;
  p.experts = c.num_experts;
  p.experts_per_token = c.num_experts_per_tok;
  p.queries = prompts.size();
  UseCounter counter(c, p);
  std::vector<size_t> slot_of_layer(static_cast<size_t>(c.num_hidden_layers), SIZE_MAX);
  for (size_t s = 0; s < p.layers.size(); ++s) slot_of_layer[static_cast<size_t>(p.layers[s].layer)] = s;
  size_t longest = 1;
  for (const auto& q : prompts) longest = std::max(longest, q.size() + o.max_tokens + 1);
  for (const auto& t : chunks) longest = std::max(longest, t.size() + 1);
  model::Session session(chat->model(), pool, {longest, 512});
  Streams streams;
  RoutingTrace* trace = nullptr;
  chat::DecodeHooks hooks;
  hooks.on_routing = [&](const model::RoutingEvent& e) {
    counter.on_routing(e);
    if (trace) trace->record(e, slot_of_layer.at(e.layer));
  };
  Progress progress("experts", prompts.size() + chunks.size() + o.compare.size(), 0, o.show_progress);
  for (const auto& prompt : prompts) {
    session.reset();
    counter.start(prompt.size());
    streams.traces.push_back({static_cast<size_t>(c.num_experts_per_tok), std::vector<std::vector<int32_t>>(p.layers.size())});
    trace = &streams.traces.back();
    const auto r = chat::respond(session, prompt, chat::greedy_options(*chat, o.max_tokens), hooks);
    trace = nullptr;
    counter.finish_reply(starts_tool_call(chat->tokenizer().decode(r.tokens)));
    std::vector<int32_t> stream(prompt.begin(), prompt.end());
    if (!r.tokens.empty()) stream.insert(stream.end(), r.tokens.begin(), r.tokens.end() - 1);
    p.tokens += stream.size();
    streams.tokens.push_back(std::move(stream));
    progress.advance(1, 0);
  }
  session.set_routing_hook(hooks.on_routing);
  for (const auto& chunk : chunks) {
    session.reset();
    counter.start(chunk.size());  // plain text counts as prompt (input) tokens
    session.forward(chunk);
    p.tokens += chunk.size();
    progress.advance(1, 0);
  }
  session.set_routing_hook({});
  for (const NamedModel& m : o.compare) {
    p.compare.push_back(compare_model(m, *chat, streams, slot_of_layer, p.layers.size(), pool));
    progress.advance(1, 0);
  }
  progress.finish();
  return p;
}

quant::ExpertsKept choose_experts(const ExpertProfile& p, size_t keep, PruneRanking by) {
  if (keep == 0 || keep > static_cast<size_t>(p.experts))
    fail(ErrorKind::kUsage, "keeping {} experts: choose between 1 and the {} the model has", keep, p.experts);
  quant::ExpertsKept kept;
  for (const LayerUse& l : p.layers) {
    std::vector<int64_t> ids(l.experts.size());
    std::iota(ids.begin(), ids.end(), 0);
    const auto score = [&](int64_t e) {
      const ExpertUse& u = l.experts[static_cast<size_t>(e)][0];
      return by == PruneRanking::kSaliency ? u.mean_saliency() : static_cast<double>(u.count);
    };
    std::stable_sort(ids.begin(), ids.end(), [&](int64_t a, int64_t b) { return score(a) > score(b); });
    ids.resize(keep);
    std::sort(ids.begin(), ids.end());
    kept[l.layer] = std::move(ids);
  }
  return kept;
}

size_t used_expert_count(const ExpertProfile& p) {
  size_t most = 0;
  for (const LayerUse& l : p.layers) {
    size_t used = 0;
    for (const auto& e : l.experts) used += e[0].count > 0;
    most = std::max(most, used);
  }
  return most;
}

}  // namespace quantlab::analysis
