#include "analysis/retention_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "eval/stats.h"

namespace quantlab::analysis {

namespace {

using nlohmann::ordered_json;

std::string pct(double x) { return std::isnan(x) ? "–" : fmt::format("{:.1f} %", 100 * x); }
std::string num(double x, int digits = 3) { return std::isnan(x) ? "–" : fmt::format("{:.{}f}", x, digits); }
std::string layer_name(int layer) { return layer < 0 ? "other (embeddings, head)" : fmt::format("layer {}", layer); }

ordered_json sums_json(int bits, const RetentionSums& s) {
  return {{"bits", bits},
          {"kept", s.kept()},
          {"cosine", s.cosine()},
          {"erased_share", s.erased_share()},
          {"delta_in_steps", s.delta_in_steps()},
          {"delta_norm", std::sqrt(s.delta_sq)},
          {"changed_weights", s.changed},
          {"erased_weights", s.erased}};
}

ordered_json widths_json(const std::vector<int>& bits, const std::vector<RetentionSums>& sums) {
  ordered_json a = ordered_json::array();
  for (size_t w = 0; w < sums.size(); ++w) a.push_back(sums_json(bits[w], sums[w]));
  return a;
}

ordered_json weights_json(const WeightRetention& w) {
  ordered_json j = {{"source", w.source}, {"bits", w.bits}, {"group_size", w.group_size}, {"seconds", w.seconds}};
  j["overall"] = widths_json(w.bits, w.overall);
  auto& layers = j["layers"] = ordered_json::array();
  for (const auto& l : w.layers) layers.push_back({{"layer", l.layer}, {"widths", widths_json(w.bits, l.sums)}});
  auto& lost = j["lost_first"] = ordered_json::array();
  for (const auto& l : layers_lost_first(w))
    lost.push_back({{"layer", l.layer}, {"loss_bits", l.loss_bits}, {"cosine_at_lowest", l.cosine_at_lowest}});
  auto& tensors = j["tensors"] = ordered_json::array();
  for (const auto& t : w.tensors)
    tensors.push_back({{"name", t.name}, {"layer", t.layer}, {"numel", t.numel}, {"widths", widths_json(t.bits, t.sums)}});
  return j;
}

ordered_json divergence_json(const ModelDivergence& d) {
  ordered_json j = {{"model", d.label}, {"bits", d.bits}, {"kl_first", d.kl_first}, {"kl_reply", d.kl_reply}};
  if (d.bits > 0) {
    j["retention_first"] = d.retention_first;
    j["retention_reply"] = d.retention_reply;
  }
  j["decisions_flipped"] = d.flipped;
  j["decisions_correct"] = d.correct;
  return j;
}

ordered_json outputs_json(const OutputRetention& o) {
  ordered_json j = {{"queries", o.queries}, {"reply_tokens", o.reply_tokens}, {"fused_correct", o.fused_correct},
                    {"seconds", o.seconds}, {"base", divergence_json(o.base)}};
  auto& q = j["quantized"] = ordered_json::array();
  for (const auto& d : o.quantized) q.push_back(divergence_json(d));
  if (!o.routing.empty()) {
    auto& r = j["routing"] = ordered_json::array();
    for (const RoutingDrift& d : o.routing)
      r.push_back({{"bits", d.bits}, {"top1_routers_pinned", d.top1_pinned}, {"jaccard_routers_pinned", d.jaccard_pinned},
                   {"top1_routers_quantized", d.top1_quantized}, {"jaccard_routers_quantized", d.jaccard_quantized}});
  }
  return j;
}

void weights_markdown(const WeightRetention& w, std::string& md) {
  md += "## From the weights\n\n";
  md += fmt::format("ΔW = W_fused − W_base over the {} quantized tensors the fine-tune changed (group size {}, {:.2f} s).\n\n",
                    w.tensors.size(), w.group_size, w.seconds);
  md += "- **cosine**: cos(deq(Q(W_fused)) − W_base, ΔW); cos² is the share of the change in the quantized weights "
        "that is the fine-tune rather than rounding noise. This is the retention measure.\n"
        "- **kept**: the projection <deq(Q(W_fused)) − W_base, ΔW> / ‖ΔW‖², the delta that survives on average.\n"
        "- **erased**: weights with ΔW ≠ 0 whose code is the base's code.\n"
        "- **ΔW in steps**: RMS(ΔW) / mean |scale|.\n\n";
  md += "| bits | cosine | kept (projection) | erased codes | ΔW in quantization steps |\n|---:|---:|---:|---:|---:|\n";
  for (size_t i = 0; i < w.bits.size(); ++i) {
    const auto& s = w.overall[i];
    md += fmt::format("| {} | {} | {} | {} | {} |\n", w.bits[i], num(s.cosine()), pct(s.kept()), pct(s.erased_share()),
                      num(s.delta_in_steps()));
  }
  md += "\n## Where the fine-tune is lost first\n\n";
  md += "A layer is lost at the highest width where its cosine falls below 0.707 (rounding noise as large as the "
        "fine-tune's change). Cosine per width:\n\n| layer | lost at |";
  std::string rule = "|---|---:|";
  for (int b : w.bits) {
    md += fmt::format(" {}-bit |", b);
    rule += "---:|";
  }
  md += "\n" + rule + "\n";
  std::map<int, const LayerRetention*> by_index;
  for (const auto& l : w.layers) by_index[l.layer] = &l;
  for (const auto& loss : layers_lost_first(w)) {
    md += fmt::format("| {} | {} |", layer_name(loss.layer), loss.loss_bits ? fmt::format("{}-bit", loss.loss_bits) : "kept");
    for (const auto& s : by_index[loss.layer]->sums) md += fmt::format(" {} |", num(s.cosine()));
    md += "\n";
  }
}

void tensors_markdown(const WeightRetention& w, std::string& md) {
  if (w.tensors.empty()) return;
  const size_t lowest = std::min_element(w.bits.begin(), w.bits.end()) - w.bits.begin();
  std::vector<const TensorRetention*> order;
  for (const auto& t : w.tensors) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [&](const auto* a, const auto* b) {
    return a->sums[lowest].cosine() < b->sums[lowest].cosine();
  });
  md += fmt::format("\n### Tensors with the lowest cosine at {} bits\n\n| tensor | cosine | kept | erased | ΔW in steps |\n|---|---:|---:|---:|---:|\n",
                    w.bits[lowest]);
  for (size_t i = 0; i < std::min<size_t>(order.size(), 10); ++i) {
    const auto& s = order[i]->sums[lowest];
    md += fmt::format("| `{}` | {} | {} | {} | {} |\n", order[i]->name, num(s.cosine()), pct(s.kept()), pct(s.erased_share()),
                      num(s.delta_in_steps()));
  }
}

void outputs_markdown(const WeightRetention& w, const OutputRetention& o, std::string& md) {
  md += "\n## From the outputs\n\n";
  md += fmt::format("{} queries; the fused float model's greedy replies ({} tokens in all) are the reference, and "
                    "its decisions are {} of {} right. KL in nats, averaged over queries.\n\n",
                    o.queries, o.reply_tokens, o.fused_correct, o.queries);
  md += "| model | KL first token | KL over reply | retention (first) | retention (reply) | decisions flipped | right |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n";
  auto row = [&](const ModelDivergence& d) {
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {}/{} |\n", d.label, num(d.kl_first, 4), num(d.kl_reply, 4),
                      d.bits ? pct(d.retention_first) : "0 % (by definition)", d.bits ? pct(d.retention_reply) : "0 %",
                      d.flipped, d.correct, o.queries);
  };
  row(o.base);
  for (const auto& d : o.quantized) row(d);
  md += fmt::format("\nAgreement of the two measures across widths (Spearman rank correlation with the output "
                    "retention over the reply): weight cosine **{}**, weight projection {}.\n",
                    num(weight_output_agreement(w, o), 3), num(weight_output_agreement(w, o, true), 3));
  if (o.routing.empty()) return;
  md += "\n### Routing drift (MoE)\n\nEach width run on the fused model's prompts and replies; per token and MoE "
        "layer, whether the first expert matches the fused model's (top-1) and the overlap of the chosen sets "
        "(Jaccard), with the routers pinned at 8 bits (what `quantize` does, as mlx-lm) and quantized at the width "
        "like everything else.\n\n| width | top-1, routers 8-bit | Jaccard, routers 8-bit | top-1, routers at width | "
        "Jaccard, routers at width |\n|---|---:|---:|---:|---:|\n";
  for (const RoutingDrift& d : o.routing)
    md += fmt::format("| {}-bit | {:.1f} % | {:.3f} | {:.1f} % | {:.3f} |\n", d.bits, 100 * d.top1_pinned,
                      d.jaccard_pinned, 100 * d.top1_quantized, d.jaccard_quantized);
}

}  // namespace

double weight_output_agreement(const WeightRetention& w, const OutputRetention& o, bool projection) {
  std::vector<double> weights, outputs;
  for (const auto& d : o.quantized) {
    auto it = std::find(w.bits.begin(), w.bits.end(), d.bits);
    if (it == w.bits.end()) continue;
    const RetentionSums& s = w.overall[it - w.bits.begin()];
    weights.push_back(projection ? s.kept() : s.cosine());
    outputs.push_back(d.retention_reply);
  }
  return eval::spearman(weights, outputs);
}

ordered_json retention_json(const RetentionInputs& in, const WeightRetention& w, const OutputRetention* o) {
  ordered_json j = {{"base", in.base}, {"fine_tune", in.fine_tune}, {"weights", weights_json(w)}};
  if (o) {
    j["outputs"] = outputs_json(*o);
    j["agreement_spearman"] = weight_output_agreement(w, *o);
    j["agreement_spearman_projection"] = weight_output_agreement(w, *o, true);
  }
  return j;
}

std::string retention_markdown(const RetentionInputs& in, const WeightRetention& w, const OutputRetention* o) {
  std::string md = "# Fine-tune retention\n\n";
  md += fmt::format("- base: `{}`\n- fine-tune ({}): `{}`\n- bit widths: {}\n\n", in.base, w.source, in.fine_tune,
                    fmt::join(w.bits, ", "));
  weights_markdown(w, md);
  tensors_markdown(w, md);
  if (o) outputs_markdown(w, *o, md);
  return md;
}

ordered_json methods_json(const std::vector<MethodRetention>& points) {
  ordered_json a = ordered_json::array();
  for (const auto& p : points) {
    ordered_json j = {{"method", p.method}, {"bits", p.bits}, {"cosine", p.weights.cosine()}, {"kept", p.weights.kept()},
                      {"delta_in_steps", p.weights.delta_in_steps()}};
    if (p.outputs) {
      j["kl_first"] = p.outputs->kl_first;
      j["kl_reply"] = p.outputs->kl_reply;
      j["retention_first"] = p.outputs->retention_first;
      j["retention_reply"] = p.outputs->retention_reply;
      j["decisions_flipped"] = p.outputs->flipped;
      j["decisions_correct"] = p.outputs->correct;
    }
    a.push_back(std::move(j));
  }
  return a;
}

std::string methods_markdown(const std::vector<MethodRetention>& points) {
  const bool outputs = !points.empty() && points.front().outputs.has_value();
  std::string md = "\n## By rounding method\n\nThe same widths with each rounding method (docs/rounding.md): cosine and "
                   "kept share of ΔW from the stored weights";
  md += outputs ? "; KL(fused ‖ model) and retention over the reply, and decisions, from the outputs.\n\n"
                  "| width | method | cosine | kept | KL(reply) | retained (reply) | flipped | correct |\n"
                  "|---:|---|---:|---:|---:|---:|---:|---:|\n"
                : ".\n\n| width | method | cosine | kept |\n|---:|---|---:|---:|\n";
  std::vector<const MethodRetention*> sorted;
  for (const auto& p : points) sorted.push_back(&p);
  std::stable_sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->bits > b->bits; });
  for (const MethodRetention* p : sorted) {
    md += fmt::format("| {} | {} | {} | {} |", p->bits, p->method, num(p->weights.cosine()), pct(p->weights.kept()));
    if (p->outputs)
      md += fmt::format(" {} | {} | {} | {} |", num(p->outputs->kl_reply, 4), pct(p->outputs->retention_reply),
                        p->outputs->flipped, p->outputs->correct);
    md += "\n";
  }
  return md;
}

}  // namespace quantlab::analysis
