#include "analysis/calibration.h"

#include <fmt/format.h>

#include <Eigen/Core>

#include <algorithm>
#include <cstring>

#include "chat/chat_model.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/progress.h"
#include "analysis/suite_prompts.h"
#include "io/architecture.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"

namespace quantlab::analysis {

namespace {

constexpr const char* kStatsFormat = "quantlab.stats/1";

// Accumulates sums of x² per module and channel as the engine reports each Linear's input.
class StatsCollector {
 public:
  // The registry's names of every layer, built once (events arrive per layer per forward pass).
  StatsCollector(const io::ModelConfig& config, bool second_moments)
      : config_(config), second_moments_(second_moments) {
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) layers_.push_back(io::layer_spec(config, l));
  }

  void on_activation(const model::ActivationEvent& e) {
    if (e.site == model::LinearSite::kHeadInput) {
      add(config_.tie_word_embeddings ? "model.embed_tokens" : "lm_head", e, 1, {});
      return;
    }
    const io::LayerSpec& s = layers_.at(e.layer);
    switch (e.site) {
      case model::LinearSite::kAttentionInput:
        for (const io::LinearSpec* l : {&s.q, &s.k, &s.v}) add(l->path, e, 1, {});
        return;
      case model::LinearSite::kAttentionOutput: add(s.o.path, e, 1, {}); return;
      case model::LinearSite::kMlpDown: add(s.down.path, e, 1, {}); return;
      case model::LinearSite::kMlpInput:
        if (!s.moe) {
          for (const io::LinearSpec* l : {&s.gate, &s.up}) add(l->path, e, 1, {});
          return;
        }
        add(s.router.path, e, 1, {});
        for (size_t proj = 0; proj < 2; ++proj)  // gate_proj, up_proj: each token's rows to its experts
          add(s.expert_projections[proj].stacked_path(), e, static_cast<size_t>(s.experts), e.experts);
        return;
      case model::LinearSite::kExpertDown:
        add(s.expert_projections[2].stacked_path(), e, static_cast<size_t>(s.experts), e.experts);
        return;
      case model::LinearSite::kHeadInput: return;
    }
  }

  std::map<std::string, ModuleStats> take() { return std::move(sums_); }

 private:
  // Adds every row of e to module `path`: to its experts' rows when `experts_of` is given (one expert
  // per row, or k per row for a token routed to k experts).
  void add(const std::string& path, const model::ActivationEvent& e, size_t experts,
           std::span<const int32_t> experts_of) {
    ModuleStats& m = sums_[path];
    if (m.cols == 0) {
      m.experts = experts;
      m.cols = e.cols;
      m.mean_x2.assign(experts * e.cols, 0.0);
      m.tokens.assign(experts, 0.0);
      if (second_moments_) {
        second_moment_bytes_ += experts * e.cols * e.cols * sizeof(double);
        // Every module's matrices are allocated during the first forward pass, so a model too large
        // for them fails within seconds, not after the calibration.
        if (second_moment_bytes_ > kSecondMomentBudget)
          fail(ErrorKind::kUnsupported,
               "the second moments E[x xᵀ] of this model's Linears need more than {:.1f} GiB (at '{}', {} x {}x{} "
               "doubles): statistics held whole in memory are limited to models of a few billion parameters "
               "(docs/rounding.md); use --method rtn, or a smaller model",
               kSecondMomentBudget / 1073741824.0, path, experts, e.cols, e.cols);
        m.xxt.assign(experts * e.cols * e.cols, 0.0);
      }
    }
    const size_t per_row = experts_of.empty() ? 0 : experts_of.size() / std::max<size_t>(e.rows, 1);
    // Rows of the event per expert (all rows to expert 0 for a plain Linear), in order.
    std::map<size_t, std::vector<size_t>> rows_of;
    for (size_t r = 0; r < e.rows; ++r) {
      if (per_row == 0) rows_of[0].push_back(r);
      for (size_t j = 0; j < per_row; ++j) rows_of[static_cast<size_t>(experts_of[r * per_row + j])].push_back(r);
    }
    for (const auto& [expert, rows] : rows_of) {
      for (size_t r : rows) accumulate(m, expert, e.x + r * e.cols);
      if (!m.xxt.empty()) accumulate_moments(m, expert, e, rows);
    }
  }

  static void accumulate(ModuleStats& m, size_t expert, const float* x) {
    double* row = m.mean_x2.data() + expert * m.cols;
    for (size_t c = 0; c < m.cols; ++c) row[c] += static_cast<double>(x[c]) * x[c];
    m.tokens[expert] += 1;
  }

  // H += XᵀX over the given rows, upper triangle only (finish_means mirrors it): one symmetric rank-k
  // update through Eigen per event and expert, at matrix-product speed.
  static void accumulate_moments(ModuleStats& m, size_t expert, const model::ActivationEvent& e,
                                 const std::vector<size_t>& rows) {
    using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    RowMajor x(rows.size(), m.cols);
    for (size_t i = 0; i < rows.size(); ++i)
      for (size_t c = 0; c < m.cols; ++c) x(i, c) = e.x[rows[i] * e.cols + c];
    Eigen::Map<RowMajor> h(m.xxt.data() + expert * m.cols * m.cols, m.cols, m.cols);
    h.selfadjointView<Eigen::Upper>().rankUpdate(x.transpose());
  }

  // 8 GiB: a third of this project's 24 GiB development machines, the weights stay mapped beside it.
  static constexpr size_t kSecondMomentBudget = size_t{8} << 30;
  const io::ModelConfig& config_;
  bool second_moments_;
  size_t second_moment_bytes_ = 0;
  std::vector<io::LayerSpec> layers_;
  std::map<std::string, ModuleStats> sums_;
};

void finish_means(std::map<std::string, ModuleStats>& modules) {
  for (auto& [path, m] : modules)
    for (size_t e = 0; e < m.experts; ++e) {
      if (m.tokens[e] > 0)
        for (size_t c = 0; c < m.cols; ++c) m.mean_x2[e * m.cols + c] /= m.tokens[e];
      if (m.xxt.empty()) continue;
      double* h = m.xxt.data() + e * m.cols * m.cols;
      const double n = std::max(m.tokens[e], 1.0);
      for (size_t i = 0; i < m.cols; ++i)
        for (size_t j = i; j < m.cols; ++j) h[j * m.cols + i] = h[i * m.cols + j] /= n;
    }
}

}  // namespace

CalibrationStats calibrate(const CalibrationOptions& o, ThreadPool& pool) {
  if (o.suite_path.empty() && o.text_path.empty())
    fail(ErrorKind::kUsage, "calibrate needs --suite or --text (the inputs to record statistics on)");
  if (!o.tools_path.empty() && o.suite_path.empty()) fail(ErrorKind::kUsage, "--tools goes with --suite");
  const auto chat = chat::ChatModel::open(o.model_dir);
  const auto prompts = encode_suite_prompts(o.suite_path, o.tools_path, *chat);
  const auto chunks = encode_text_chunks(o.text_path, o.text_chunk, *chat);
  size_t longest = 1;
  for (const auto& p : prompts) longest = std::max(longest, p.size() + o.max_tokens + 1);
  for (const auto& c : chunks) longest = std::max(longest, c.size() + 1);
  model::Session session(chat->model(), pool, {longest, 512});
  StatsCollector collector(chat->config(), o.second_moments);
  chat::DecodeHooks hooks;
  hooks.on_activation = [&](const model::ActivationEvent& e) { collector.on_activation(e); };
  CalibrationStats stats;
  Progress progress("calibrate", prompts.size() + chunks.size(), 0, o.show_progress);
  // Prompts, then the model's own greedy reply fed back token by token: every reply token but the last
  // passes through the layers (teacher-forced on its own reply).
  for (const auto& prompt : prompts) {
    session.reset();
    const auto r = chat::respond(session, prompt, chat::greedy_options(*chat, o.max_tokens), hooks);
    stats.tokens += prompt.size() + r.tokens.size() - 1;
    progress.advance(1, 0);
  }
  session.set_activation_hook(hooks.on_activation);
  for (const auto& chunk : chunks) {
    session.reset();
    session.forward(chunk);
    stats.tokens += chunk.size();
    progress.advance(1, 0);
  }
  session.set_activation_hook({});
  progress.finish();
  const io::ModelConfig& c = chat->config();
  stats.model_type = c.model_type;
  stats.hidden_size = c.hidden_size;
  stats.num_hidden_layers = c.num_hidden_layers;
  stats.vocab_size = c.vocab_size;
  stats.num_experts = c.is_moe() ? c.num_experts : 0;
  stats.modules = collector.take();
  finish_means(stats.modules);
  return stats;
}

void write_stats(const CalibrationStats& s, const std::string& path) {
  std::vector<std::vector<float>> buffers;
  std::vector<io::TensorData> tensors;
  buffers.reserve(s.modules.size() * 3);
  for (const auto& [module, m] : s.modules) {
    const bool stacked = m.experts > 1;
    buffers.emplace_back(m.mean_x2.begin(), m.mean_x2.end());
    std::vector<int64_t> shape = {static_cast<int64_t>(m.cols)};
    if (stacked) shape.insert(shape.begin(), static_cast<int64_t>(m.experts));
    tensors.push_back({{module, DType::kF32, shape}, {}});
    buffers.emplace_back(m.tokens.begin(), m.tokens.end());
    tensors.push_back({{module + ".tokens", DType::kF32, {static_cast<int64_t>(m.experts)}}, {}});
    if (m.xxt.empty()) continue;
    buffers.emplace_back(m.xxt.begin(), m.xxt.end());
    std::vector<int64_t> square = {static_cast<int64_t>(m.cols), static_cast<int64_t>(m.cols)};
    if (stacked) square.insert(square.begin(), static_cast<int64_t>(m.experts));
    tensors.push_back({{module + ".xxt", DType::kF32, square}, {}});
  }
  for (size_t i = 0; i < tensors.size(); ++i)
    tensors[i].bytes = {reinterpret_cast<const uint8_t*>(buffers[i].data()), buffers[i].size() * sizeof(float)};
  io::write_safetensors_file(path, tensors,
                             {{"format", kStatsFormat},
                              {"model_type", s.model_type},
                              {"hidden_size", std::to_string(s.hidden_size)},
                              {"num_hidden_layers", std::to_string(s.num_hidden_layers)},
                              {"vocab_size", std::to_string(s.vocab_size)},
                              {"num_experts", std::to_string(s.num_experts)},
                              {"tokens", std::to_string(s.tokens)}});
}

namespace {

int64_t metadata_int(const io::SafetensorsFile& f, const char* key) {
  const auto it = f.metadata().find(key);
  if (it == f.metadata().end()) fail_input("{}: metadata '{}' is missing (not a quantlab statistics file?)", f.path(), key);
  try {
    return std::stoll(it->second);
  } catch (const std::exception&) {
    fail_input("{}: metadata '{}' is not an integer", f.path(), key);
  }
}

std::vector<double> read_f32(const io::SafetensorsFile& f, const io::TensorInfo& t) {
  if (t.dtype != DType::kF32) fail_input("{}: tensor '{}' must be F32", f.path(), t.name);
  const auto bytes = f.bytes(t);
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return {v.begin(), v.end()};
}

}  // namespace

CalibrationStats read_stats(const std::string& path) {
  const io::SafetensorsFile f(path);
  const auto format = f.metadata().find("format");
  if (format == f.metadata().end() || format->second != kStatsFormat)
    fail_input("{}: not a quantlab statistics file (metadata format is not \"{}\"; make one with `quantlab "
               "calibrate`)", path, kStatsFormat);
  CalibrationStats s;
  s.model_type = f.metadata().count("model_type") ? f.metadata().at("model_type") : "";
  s.hidden_size = metadata_int(f, "hidden_size");
  s.num_hidden_layers = metadata_int(f, "num_hidden_layers");
  s.vocab_size = metadata_int(f, "vocab_size");
  s.num_experts = metadata_int(f, "num_experts");
  s.tokens = static_cast<uint64_t>(metadata_int(f, "tokens"));
  for (const auto& t : f.tensors()) {
    if (t.name.ends_with(".tokens") || t.name.ends_with(".xxt")) continue;
    const auto* count = f.find(t.name + ".tokens");
    if (!count) fail_input("{}: tensor '{}' has no '{}.tokens'", path, t.name, t.name);
    ModuleStats m;
    m.mean_x2 = read_f32(f, t);
    m.tokens = read_f32(f, *count);
    m.experts = t.shape.size() == 2 ? static_cast<size_t>(t.shape[0]) : 1;
    m.cols = static_cast<size_t>(t.shape.back());
    if (t.shape.size() > 2 || m.tokens.size() != m.experts)
      fail_input("{}: tensor '{}' has shape {} and {} token counts", path, t.name, t.shape_string(), m.tokens.size());
    if (const auto* xxt = f.find(t.name + ".xxt")) {
      if (xxt->numel() != static_cast<int64_t>(m.experts * m.cols * m.cols))
        fail_input("{}: tensor '{}' has shape {}; expected {} square matrices of {} columns", path, xxt->name,
                   xxt->shape_string(), m.experts, m.cols);
      m.xxt = read_f32(f, *xxt);
    }
    s.modules.emplace(t.name, std::move(m));
  }
  return s;
}

void check_stats_match(const CalibrationStats& s, const io::ModelConfig& c, const std::string& stats_path) {
  const int64_t experts = c.is_moe() ? c.num_experts : 0;
  if (s.hidden_size != c.hidden_size || s.num_hidden_layers != c.num_hidden_layers || s.vocab_size != c.vocab_size ||
      s.num_experts != experts)
    fail_input("{} was recorded on another model ({}: hidden {}, {} layers, vocab {}, {} experts) than {} "
               "(hidden {}, {} layers, vocab {}, {} experts)", stats_path, s.model_type, s.hidden_size,
               s.num_hidden_layers, s.vocab_size, s.num_experts, c.path, c.hidden_size, c.num_hidden_layers,
               c.vocab_size, experts);
}

std::map<std::string, std::vector<double>> take_rounding_moments(CalibrationStats& stats) {
  std::map<std::string, std::vector<double>> out;
  for (auto& [module, m] : stats.modules) {
    if (m.xxt.empty()) continue;
    for (double& v : m.xxt) v = static_cast<float>(v);
    out.emplace(module, std::move(m.xxt));
  }
  return out;
}

}  // namespace quantlab::analysis
