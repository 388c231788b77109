#include "analysis/sequential_calibration.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "analysis/affine_rows.h"
#include "analysis/stats_collector.h"
#include "analysis/vocabulary_prior.h"
#include "analysis/suite_prompts.h"
#include "chat/chat_model.h"
#include "core/error.h"
#include "core/progress.h"
#include "io/architecture.h"
#include "kernels/kernels.h"
#include "model/blocks.h"
#include "model/model.h"
#include "model/session.h"
#include "quant/convert.h"

namespace quantlab::analysis {

namespace {

struct Sequence {
  std::vector<int32_t> tokens;
  // Trailing positions whose next token plain calibration predicts (the output head's inputs): the
  // prompt's last token and every reply token fed back, or a text chunk's last token.
  size_t head_rows = 1;
  std::vector<float> stream;  // [tokens, hidden]: the residual stream entering the next layer to run
};

// The token sequences `calibrate` runs: each prompt followed by the float model's greedy reply (every
// reply token but the last is fed back), then the text chunks.
std::vector<Sequence> calibration_sequences(const CalibrationOptions& o, ThreadPool& pool, size_t& longest) {
  const auto chat = chat::ChatModel::open(o.model_dir);
  const auto prompts = encode_suite_prompts(o.suite_path, o.tools_path, *chat);
  const auto chunks = encode_text_chunks(o.text_path, o.text_chunk, *chat);
  longest = 1;
  for (const auto& p : prompts) longest = std::max(longest, p.size() + o.max_tokens + 1);
  for (const auto& c : chunks) longest = std::max(longest, c.size() + 1);
  model::Session session(chat->model(), pool, {longest, 512});
  std::vector<Sequence> out;
  Progress progress("replies", prompts.size(), 0, o.show_progress && !prompts.empty());
  for (const auto& prompt : prompts) {
    session.reset();
    const auto reply = chat::respond(session, prompt, chat::greedy_options(*chat, o.max_tokens)).tokens;
    Sequence s{prompt, std::max<size_t>(reply.size(), 1), {}};
    if (!reply.empty()) s.tokens.insert(s.tokens.end(), reply.begin(), reply.end() - 1);
    out.push_back(std::move(s));
    progress.advance(1, 0);
  }
  progress.finish();
  for (const auto& chunk : chunks) out.push_back({chunk, 1, {}});
  return out;
}

// The Linears whose inputs one stage records, in the order each depends on the one before. A MoE layer's
// router is rounded before its experts' gate/up inputs are recorded: which expert a token reaches (so
// whose statistics it enters) is the rounded router's choice.
struct Stage {
  model::LinearSite site, also;
  bool router_only = false;
};
constexpr Stage kStages[] = {{model::LinearSite::kAttentionInput, model::LinearSite::kAttentionInput},
                             {model::LinearSite::kAttentionOutput, model::LinearSite::kAttentionOutput},
                             {model::LinearSite::kMlpInput, model::LinearSite::kMlpInput, true},
                             {model::LinearSite::kMlpInput, model::LinearSite::kMlpInput},
                             {model::LinearSite::kMlpDown, model::LinearSite::kExpertDown}};

// Rounds modules of the plan in memory as the quantizer will and swaps them into the engine's model.
class ModuleSwapper {
 public:
  ModuleSwapper(model::Model& model, const quant::QuantPlan& plan, const quant::RoundingOptions& settings,
                ThreadPool& pool)
      : model_(model), settings_(settings), pool_(pool), base_(quant::open_delta_base(plan, settings)) {
    for (const quant::OutputTensor& t : plan.tensors)
      if (t.quant && !t.module.empty()) by_module_[t.module] = &t;
    settings_.moments.clear();
    settings_.routed_inputs.clear();
  }

  // Every module of `stats` that the plan quantizes and that is not rounded yet, rounded with these statistics.
  void round(const std::map<std::string, ModuleStats>& stats) {
    quant::RoundingOptions r = settings_;
    CalibrationStats moments;
    moments.modules = stats;  // copied: take_rounding_statistics moves them out
    take_rounding_statistics(moments, r);
    for (const auto& [module, m] : stats)
      if (const auto t = by_module_.find(module); t != by_module_.end() && rounded_.insert(module).second)
        swap_in(*t->second, r);
  }

  void round_module(const std::string& module) {
    if (const auto t = by_module_.find(module); t != by_module_.end() && rounded_.insert(module).second)
      swap_in(*t->second, settings_);
  }

  // The float views back, the copies freed (the stream has moved past them).
  void release() {
    for (auto it = originals_.rbegin(); it != originals_.rend(); ++it) *it->first = it->second;
    originals_.clear();
    copies_.clear();
  }

 private:
  void swap_in(const quant::OutputTensor& t, const quant::RoundingOptions& r) {
    if (t.quant->mode != "affine")
      fail(ErrorKind::kUnsupported, "sequential calibration rounds affine modules; '{}' is {}", t.module, t.quant->mode);
    // A tied embedding is one matrix seen twice (input and output head): rounded once.
    std::vector<kernels::MatrixView*> distinct;
    std::map<const void*, std::vector<kernels::MatrixView*>> sharing;
    for (kernels::MatrixView* v : model_.module_views(t.module)) {
      if (sharing[v->data].empty()) distinct.push_back(v);
      sharing[v->data].push_back(v);
    }
    const size_t sources = t.sources.size(), cols = static_cast<size_t>(t.cols());
    QL_CHECK(!distinct.empty() && distinct.size() % sources == 0, "{}: {} views for {} sources", t.module,
             distinct.size(), sources);
    const size_t rows = static_cast<size_t>(t.rows()) / sources, per_view = rows / (distinct.size() / sources);
    for (size_t s = 0; s < sources; ++s) {
      std::optional<quant::GptqFactor> factor;
      if (quant::uses_gptq(t, r)) factor.emplace(quant::rounding_factor(t, s, model_.weights(), base(), r, pool_));
      const auto& entry = model_.weights().at(t.sources[s]);
      const auto read = [&](size_t first, size_t last, std::vector<float>& out) {
        const size_t size = dtype_size(entry.info->dtype);
        out.resize((last - first) * cols);
        kernels::convert_to_f32(entry.info->dtype, model_.weights().bytes(entry).data() + first * cols * size,
                                out.size(), out.data());
        quant::round_to_dtype(out.data(), out.size(), t.float_dtype);
      };
      const AffineRows& a = *copies_.emplace_back(std::make_unique<AffineRows>(
          round_affine_source(rows, cols, t.quant->bits, t.quant->group_size, t.float_dtype,
                              factor ? &*factor : nullptr, read, pool_)));
      const size_t words = a.words_per_row(), groups = a.groups_per_row();
      for (size_t i = 0; i < distinct.size() / sources; ++i) {
        const size_t r0 = i * per_view;
        kernels::MatrixView q = kernels::affine_f32_view(per_view, cols, a.bits, a.group_size,
                                                         a.packed.data() + r0 * words, a.scales.data() + r0 * groups,
                                                         a.biases.data() + r0 * groups);
        for (kernels::MatrixView* v : sharing[distinct[s * (distinct.size() / sources) + i]->data]) {
          q.compute = v->compute;
          originals_.emplace_back(v, *v);
          *v = q;
        }
      }
    }
  }

  const io::ModelWeights* base() const { return base_ ? &*base_ : nullptr; }

  model::Model& model_;
  quant::RoundingOptions settings_;
  ThreadPool& pool_;
  std::map<std::string, const quant::OutputTensor*> by_module_;
  std::optional<io::ModelWeights> base_;
  std::vector<std::pair<kernels::MatrixView*, kernels::MatrixView>> originals_;
  std::vector<std::unique_ptr<AffineRows>> copies_;
  std::set<std::string> rounded_;
};

// The output head's inputs: the final stream of each sequence's predicting positions, normed.
void record_head_inputs(const model::Model& model, const std::vector<Sequence>& sequences, StatsCollector& collector) {
  const size_t H = model.dims().hidden;
  std::vector<float> normed;
  for (const Sequence& s : sequences) {
    const size_t rows = std::min(s.head_rows, s.tokens.size()), first = s.tokens.size() - rows;
    normed.resize(rows * H);
    model::rms_norm_rows(s.stream.data() + first * H, model.final_norm(), rows, model.dims().rms_eps, normed.data());
    collector.on_activation({model.dims().layers, model::LinearSite::kHeadInput, rows, H, normed.data(), {}});
  }
}

// Every sequence's stream starts as its tokens' embedding rows (through a rounded table when the plan
// quantizes it).
void embed_sequences(const model::Model& model, std::vector<Sequence>& sequences) {
  const size_t H = model.dims().hidden;
  for (Sequence& s : sequences) {
    s.stream.resize(s.tokens.size() * H);
    for (size_t i = 0; i < s.tokens.size(); ++i)
      kernels::dequantize_row(model.embedding(), static_cast<size_t>(s.tokens[i]), s.stream.data() + i * H);
  }
}

// One stage of one layer: its modules' statistics over every sequence, the streams left as they were.
std::map<std::string, ModuleStats> record_stage(model::Session& session, const std::vector<Sequence>& sequences,
                                                size_t layer, const Stage& stage, StatsCollector& collector) {
  session.set_activation_hook([&](const model::ActivationEvent& e) {
    if (e.layer == layer && (e.site == stage.site || e.site == stage.also)) collector.on_activation(e);
  });
  std::vector<float> stream;
  for (const Sequence& s : sequences) {
    stream = s.stream;
    session.reset();
    session.forward_layers(stream, layer, layer + 1);
  }
  session.set_activation_hook({});
  std::map<std::string, ModuleStats> recorded = collector.take();
  finish_means(recorded);
  return recorded;
}

// The streams moved past `layer`, with its modules as rounded.
void advance_streams(model::Session& session, std::vector<Sequence>& sequences, size_t layer) {
  for (Sequence& s : sequences) {
    session.reset();
    session.forward_layers(s.stream, layer, layer + 1);
  }
}

}  // namespace

CalibrationStats calibrate_sequential(const CalibrationOptions& o, const quant::QuantPlan& plan,
                                      const quant::RoundingOptions& rounding, ThreadPool& pool) {
  if (o.suite_path.empty() && o.text_path.empty())
    fail(ErrorKind::kUsage, "calibrate needs --suite or --text (the inputs to record statistics on)");
  size_t longest = 1;
  std::vector<Sequence> sequences = calibration_sequences(o, pool, longest);
  model::Model model = model::Model::load(o.model_dir);
  CalibrationStats stats = empty_stats(model.config());
  for (const Sequence& s : sequences) stats.tokens += s.tokens.size();
  ModuleSwapper swapper(model, plan, rounding, pool);
  const bool tied = model.output().weight.data == model.embedding().data;
  swapper.round_module(io::model_spec(model.config(), tied).embedding.path);
  embed_sequences(model, sequences);
  model::Session session(model, pool, {longest, 512});
  StatsCollector collector(model.config(), true, o.expert_statistics);
  Progress progress("calibrate", model.dims().layers, 0, o.show_progress);
  for (size_t layer = 0; layer < model.dims().layers; ++layer) {
    const io::LayerSpec spec = io::layer_spec(model.config(), static_cast<int64_t>(layer));
    for (const Stage& stage : kStages) {
      if (stage.router_only && !spec.moe) continue;
      std::map<std::string, ModuleStats> recorded = record_stage(session, sequences, layer, stage, collector);
      if (stage.router_only) std::erase_if(recorded, [&](const auto& m) { return m.first != spec.router.path; });
      swapper.round(recorded);
      for (auto& [module, m] : recorded) stats.modules[module] = std::move(m);
    }
    advance_streams(session, sequences, layer);
    swapper.release();
    progress.advance(1, 0);
  }
  progress.finish();
  record_head_inputs(model, sequences, collector);
  std::map<std::string, ModuleStats> head = collector.take();
  finish_means(head);
  for (auto& [module, m] : head) stats.modules[module] = std::move(m);
  return stats;
}

quant::RoundingOptions with_sequential_statistics(const CalibrationOptions& options,
                                                  const quant::PlanOptions& plan_options,
                                                  quant::RoundingOptions settings, ThreadPool& pool) {
  settings.moments.clear();
  settings.routed_inputs.clear();
  const io::ModelWeights weights = io::ModelWeights::open(options.model_dir);
  const quant::QuantPlan plan =
      quant::make_quant_plan(io::load_model_config(options.model_dir), quant::source_tensors(weights), plan_options);
  CalibrationOptions o = options;
  o.second_moments = true;
  add_vocabulary_prior(settings, options.model_dir, pool);  // before the swapper copies the settings
  CalibrationStats stats = calibrate_sequential(o, plan, settings, pool);
  take_rounding_statistics(stats, settings);
  settings.sequential = true;
  return settings;
}

}  // namespace quantlab::analysis
