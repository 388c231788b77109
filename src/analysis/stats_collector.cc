#include "analysis/stats_collector.h"

#include <Eigen/Core>

#include <algorithm>

#include "core/error.h"
#include "kernels/kernels.h"

namespace quantlab::analysis {

StatsCollector::StatsCollector(const io::ModelConfig& config, bool second_moments,
                               CalibrationOptions::ExpertStatistics experts)
    : config_(config), second_moments_(second_moments), expert_statistics_(experts) {
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) layers_.push_back(io::layer_spec(config, l));
}

void StatsCollector::on_activation(const model::ActivationEvent& e) {
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

// Adds every row of e to module `path`: to its experts' rows when `experts_of` is given (one expert
// per row, or k per row for a token routed to k experts).
void StatsCollector::add(const std::string& path, const model::ActivationEvent& e, size_t experts,
                         std::span<const int32_t> experts_of) {
  ModuleStats& m = sums_[path];
  if (m.cols == 0) {
    m.experts = experts;
    m.cols = e.cols;
    m.mean_x2.assign(experts * e.cols, 0.0);
    m.tokens.assign(experts, 0.0);
    if (second_moments_ && keeps_inputs(experts, e.cols, experts_of.size() / std::max<size_t>(e.rows, 1))) {
      m.inputs = std::make_shared<quant::RoutedInputs>();
      m.inputs->cols = e.cols;
      m.inputs->route_width = experts_of.size() / std::max<size_t>(e.rows, 1);
    } else if (second_moments_) {
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
  if (m.inputs) keep_inputs(*m.inputs, e, experts_of);
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

void StatsCollector::accumulate(ModuleStats& m, size_t expert, const float* x) {
  double* row = m.mean_x2.data() + expert * m.cols;
  for (size_t c = 0; c < m.cols; ++c) row[c] += static_cast<double>(x[c]) * x[c];
  m.tokens[expert] += 1;
}

// Routed inputs instead of per-expert matrices: for stacked experts only, as asked or when the
// experts' matrices would exceed 256 MiB for this module.
bool StatsCollector::keeps_inputs(size_t experts, size_t cols, size_t route_width) const {
  using Mode = CalibrationOptions::ExpertStatistics;
  if (experts < 2 || route_width == 0 || expert_statistics_ == Mode::kMoments) return false;
  return expert_statistics_ == Mode::kInputs || experts * cols * cols * sizeof(double) > (size_t{256} << 20);
}

void StatsCollector::keep_inputs(quant::RoutedInputs& in, const model::ActivationEvent& e,
                                 std::span<const int32_t> routes) {
  QL_CHECK(routes.size() == e.rows * in.route_width, "{} routes for {} rows of {}", routes.size(), e.rows,
           in.route_width);
  in.values.resize((in.rows + e.rows) * in.cols);
  kernels::convert_f32_to_bf16(e.x, e.rows * in.cols, in.values.data() + in.rows * in.cols);
  in.routes.insert(in.routes.end(), routes.begin(), routes.end());
  in.rows += e.rows;
}

// H += XᵀX over the given rows, upper triangle only (finish_means mirrors it): one symmetric rank-k
// update through Eigen per event and expert, at matrix-product speed.
void StatsCollector::accumulate_moments(ModuleStats& m, size_t expert, const model::ActivationEvent& e,
                                        const std::vector<size_t>& rows) {
  using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  RowMajor x(rows.size(), m.cols);
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t c = 0; c < m.cols; ++c) x(i, c) = e.x[rows[i] * e.cols + c];
  Eigen::Map<RowMajor> h(m.xxt.data() + expert * m.cols * m.cols, m.cols, m.cols);
  h.selfadjointView<Eigen::Upper>().rankUpdate(x.transpose());
}

CalibrationStats empty_stats(const io::ModelConfig& c) {
  CalibrationStats s;
  s.model_type = c.model_type;
  s.hidden_size = c.hidden_size;
  s.num_hidden_layers = c.num_hidden_layers;
  s.vocab_size = c.vocab_size;
  s.num_experts = c.is_moe() ? c.num_experts : 0;
  return s;
}

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

}  // namespace quantlab::analysis
