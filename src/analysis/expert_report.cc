#include "analysis/expert_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "analysis/svg_chart.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "io/model_config.h"

namespace quantlab::analysis {

namespace {

using ojson = nlohmann::ordered_json;
constexpr std::string_view kFormat = "quantlab.experts/1";

ojson use_json(const ExpertUse& u) {
  return {{"count", u.count}, {"weight", u.weight}, {"saliency", u.mean_saliency()}};
}

ExpertUse read_use(const ojson& j, const std::string& where) {
  if (!j.is_object() || !j.contains("count") || !j.contains("weight") || !j.contains("saliency") ||
      !j["count"].is_number_unsigned() || !j["weight"].is_number() || !j["saliency"].is_number())
    fail_input("{}: expected {{count, weight, saliency}}", where);
  ExpertUse u;
  u.count = j["count"].get<uint64_t>();
  u.weight = j["weight"].get<double>();
  u.saliency = j["saliency"].get<double>() * static_cast<double>(u.count);  // stored as the mean
  return u;
}

// Shares of the layer's routed tokens, largest first: how concentrated the routing is.
std::vector<double> sorted_shares(const LayerUse& l) {
  uint64_t total = 0;
  for (const auto& e : l.experts) total += e[0].count;
  std::vector<double> shares;
  for (const auto& e : l.experts) shares.push_back(total ? double(e[0].count) / double(total) : 0.0);
  std::sort(shares.rbegin(), shares.rend());
  return shares;
}

size_t experts_for(const std::vector<double>& shares, double mass) {
  double sum = 0;
  for (size_t i = 0; i < shares.size(); ++i)
    if ((sum += shares[i]) >= mass - 1e-12) return i + 1;
  return shares.size();
}

}  // namespace

ojson profile_json(const ExpertProfile& p) {
  ojson layers = ojson::array();
  for (const LayerUse& l : p.layers) {
    ojson experts = ojson::array(), tokens = ojson::object();
    for (size_t s = 0; s < kTokenSources; ++s) tokens[std::string(token_source_name(TokenSource(s)))] = l.tokens[s];
    for (size_t e = 0; e < l.experts.size(); ++e) {
      ojson x = {{"id", e}};
      x.update(use_json(l.experts[e][0]));
      for (size_t s = 1; s < kTokenSources; ++s) x[std::string(token_source_name(TokenSource(s)))] = use_json(l.experts[e][s]);
      experts.push_back(std::move(x));
    }
    layers.push_back({{"layer", l.layer}, {"tokens", tokens}, {"experts", experts}});
  }
  ojson compare = ojson::array();
  for (const RoutingAgreement& a : p.compare)
    compare.push_back({{"name", a.name}, {"dir", a.dir}, {"tokens", a.tokens}, {"mean_top1", a.mean_top1()},
                       {"mean_jaccard", a.mean_jaccard()}, {"top1", a.top1}, {"jaccard", a.jaccard}});
  return {{"format", kFormat},       {"model", p.model},       {"model_type", p.model_type},
          {"experts", p.experts},    {"experts_per_token", p.experts_per_token},
          {"queries", p.queries},    {"tokens", p.tokens},     {"layers", layers},
          {"compare", compare}};
}

ExpertProfile read_profile(const std::string& path) {
  ojson j;
  try {
    j = ojson::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail_input("{}: not valid JSON: {}", path, e.what());
  }
  if (!j.is_object() || j.value("format", ojson()) != kFormat)
    fail_input("{}: not an expert profile (expected \"format\": \"{}\", as `quantlab experts` writes)", path, kFormat);
  ExpertProfile p;
  try {
    p.model = j.at("model").get<std::string>();
    p.model_type = j.at("model_type").get<std::string>();
    p.experts = j.at("experts").get<int64_t>();
    p.experts_per_token = j.at("experts_per_token").get<int64_t>();
    p.queries = j.at("queries").get<size_t>();
    p.tokens = j.at("tokens").get<uint64_t>();
    for (const auto& l : j.at("layers")) {
      LayerUse use;
      use.layer = l.at("layer").get<int64_t>();
      for (size_t s = 0; s < kTokenSources; ++s)
        use.tokens[s] = l.at("tokens").at(std::string(token_source_name(TokenSource(s)))).get<uint64_t>();
      for (const auto& e : l.at("experts")) {
        const std::string where = fmt::format("{}: layers[layer {}].experts[{}]", path, use.layer, use.experts.size());
        std::array<ExpertUse, kTokenSources> u;
        u[0] = read_use(e, where);
        for (size_t s = 1; s < kTokenSources; ++s) u[s] = read_use(e.at(std::string(token_source_name(TokenSource(s)))), where);
        use.experts.push_back(u);
      }
      if (use.experts.size() != static_cast<size_t>(p.experts))
        fail_input("{}: layer {} lists {} experts, the profile says {}", path, use.layer, use.experts.size(), p.experts);
      p.layers.push_back(std::move(use));
    }
  } catch (const nlohmann::json::exception& e) {
    fail_input("{}: {}", path, e.what());
  }
  return p;
}

void check_profile_matches(const ExpertProfile& p, const std::string& profile_path, const std::string& model_dir) {
  const io::ModelConfig c = io::load_model_config(model_dir);
  if (!c.is_moe()) fail(ErrorKind::kUsage, "{}: not a mixture-of-experts model: there are no experts to prune", model_dir);
  size_t moe_layers = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) moe_layers += c.is_moe_layer(l);
  bool layers_match = moe_layers == p.layers.size();
  for (const LayerUse& l : p.layers) layers_match &= l.layer < c.num_hidden_layers && c.is_moe_layer(l.layer);
  if (c.num_experts != p.experts || !layers_match)
    fail_input("{} was recorded on a model with {} experts in {} MoE layers ({}); {} has {} experts in {} MoE layers",
               profile_path, p.experts, p.layers.size(), p.model, model_dir, c.num_experts, moe_layers);
}

std::string expert_report_markdown(const ExpertProfile& p) {
  std::string out = fmt::format("# Expert use of {}\n\n{} queries, {} tokens through the layers; {} experts per MoE "
                                "layer, {} active per token.\n\n",
                                p.model, p.queries, p.tokens, p.experts, p.experts_per_token);
  out += "Per layer: experts used at all, how many carry 50 % / 90 % of the routed tokens, the busiest expert's share, "
         "and the experts used only by tool-call or only by direct replies.\n\n"
         "| layer | used | 50 % in | 90 % in | busiest | tool-reply only | direct-reply only |\n"
         "|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const LayerUse& l : p.layers) {
    const auto shares = sorted_shares(l);
    size_t used = 0, tool_only = 0, direct_only = 0;
    for (const auto& e : l.experts) {
      used += e[0].count > 0;
      const bool tool = e[size_t(TokenSource::kToolReply)].count > 0, direct = e[size_t(TokenSource::kDirectReply)].count > 0;
      tool_only += tool && !direct;
      direct_only += direct && !tool;
    }
    out += fmt::format("| {} | {} | {} | {} | {:.1f} % | {} | {} |\n", l.layer, used, experts_for(shares, 0.5),
                       experts_for(shares, 0.9), 100 * (shares.empty() ? 0.0 : shares.front()), tool_only, direct_only);
  }
  if (!p.compare.empty()) {
    out += "\n## Routing agreement with the reference\n\nEach model teacher-forced on the reference's prompts and "
           "replies; per token and MoE layer, whether the first expert is the same (top-1) and the overlap of the "
           "top-k sets (Jaccard).\n\n| model | tokens | top-1 agreement | Jaccard |\n|---|---:|---:|---:|\n";
    for (const RoutingAgreement& a : p.compare)
      out += fmt::format("| {} | {} | {:.1f} % | {:.3f} |\n", a.name, a.tokens, 100 * a.mean_top1(), a.mean_jaccard());
  }
  out += fmt::format("\nUnused experts (no token routed) can be pruned without changing these tokens' outputs: "
                     "`quantlab prune MODEL OUT --profile experts.json --drop-unused` keeps {} per layer.\n",
                     used_expert_count(p));
  return out;
}

std::string expert_heatmap_svg(const ExpertProfile& p) {
  const int cell_w = std::max(3, 640 / std::max<int>(1, static_cast<int>(p.experts))), cell_h = 14, left = 60, top = 40;
  const int width = left + cell_w * static_cast<int>(p.experts) + 20;
  const int height = top + cell_h * static_cast<int>(p.layers.size()) + 40;
  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" "
      "font-size=\"11\">\n<text x=\"{}\" y=\"20\" font-size=\"13\">{}: share of each layer's routed tokens per "
      "expert (darker = more)</text>\n",
      width, height, left, svg_escape(p.model));
  for (size_t r = 0; r < p.layers.size(); ++r) {
    const LayerUse& l = p.layers[r];
    uint64_t total = 0, most = 0;
    for (const auto& e : l.experts) total += e[0].count, most = std::max(most, e[0].count);
    const int y = top + static_cast<int>(r) * cell_h;
    out += fmt::format("<text x=\"4\" y=\"{}\">layer {}</text>\n", y + cell_h - 3, l.layer);
    for (size_t e = 0; e < l.experts.size(); ++e) {
      const double share = most ? double(l.experts[e][0].count) / double(most) : 0.0;
      const int shade = 255 - static_cast<int>(std::lround(215 * share));
      out += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"rgb({},{},255)\"><title>layer {} "
                         "expert {}: {} tokens ({:.2f} %)</title></rect>\n",
                         left + static_cast<int>(e) * cell_w, y, cell_w, cell_h - 1, shade, shade, l.layer, e,
                         l.experts[e][0].count, total ? 100.0 * double(l.experts[e][0].count) / double(total) : 0.0);
    }
  }
  out += fmt::format("<text x=\"{}\" y=\"{}\">expert 0 … {}</text>\n</svg>\n", left, height - 12, p.experts - 1);
  return out;
}

namespace {
ojson outcome_json(const AblationOutcome& o) { return {{"kl", o.kl}, {"decision_accuracy", o.decision_accuracy}}; }
}  // namespace

ojson saliency_check_json(const SaliencyCheck& c, const AblationOutcome& full) {
  ojson rankings = ojson::array();
  for (const RankingCheck& r : c.rankings)
    rankings.push_back({{"ranking", r.name}, {"leave_one_out_spearman", r.spearman},
                        {"half_removed", outcome_json(r.half_removed)}});
  return {{"full", outcome_json(full)},
          {"rankings", rankings},
          {"half_most_salient_removed", outcome_json(c.most_salient_removed)},
          {"half_random_mean", outcome_json(c.random_mean)},
          {"random_draws", c.random_draws}};
}

std::string saliency_check_markdown(const ExpertProfile& p, const SaliencyCheck& c, const AblationOutcome& full) {
  std::string out =
      "\n## Do the rankings predict what removing experts costs?\n\nPer layer, the Spearman correlation between "
      "each expert's score and KL(full ‖ without that expert) over every position of the suite (each expert left "
      "out alone). saliency = REAP's mean of router weight × ‖expert output‖ over the tokens routed to the "
      "expert; total_saliency = the same summed (frequency counts); count = tokens routed.\n\n| layer |";
  for (const RankingCheck& r : c.rankings) out += fmt::format(" {} |", r.name);
  out += "\n|---:|";
  for (size_t i = 0; i < c.rankings.size(); ++i) out += "---:|";
  out += "\n";
  for (size_t i = 0; i < p.layers.size(); ++i) {
    out += fmt::format("| {} |", p.layers[i].layer);
    for (const RankingCheck& r : c.rankings) out += fmt::format(" {:.3f} |", r.spearman.at(i));
    out += "\n";
  }
  out += fmt::format("\nHalf the experts of every layer removed ({} of {}):\n\n| removed | KL(full ‖ pruned) | "
                     "decision accuracy |\n|---|---:|---:|\n| none (full model) | {:.4f} | {:.1f} % |\n",
                     p.experts / 2, p.experts, full.kl, 100 * full.decision_accuracy);
  for (const RankingCheck& r : c.rankings)
    out += fmt::format("| lowest {} half | {:.4f} | {:.1f} % |\n", r.name, r.half_removed.kl,
                       100 * r.half_removed.decision_accuracy);
  out += fmt::format("| random halves (mean of {}) | {:.4f} | {:.1f} % |\n| highest saliency half | {:.4f} | {:.1f} % |\n",
                     c.random_draws, c.random_mean.kl, 100 * c.random_mean.decision_accuracy,
                     c.most_salient_removed.kl, 100 * c.most_salient_removed.decision_accuracy);
  return out;
}

}  // namespace quantlab::analysis
