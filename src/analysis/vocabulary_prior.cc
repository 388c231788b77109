#include "analysis/vocabulary_prior.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <memory>

#include "core/error.h"
#include "io/architecture.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "quant/gptq_low_rank.h"

namespace quantlab::analysis {

namespace {

// One float tensor of the checkpoint as f32, checked against the shape the config gives it.
const io::ModelWeights::Entry& float_tensor(const io::ModelWeights& w, const std::string& name,
                                            const std::vector<int64_t>& shape) {
  const io::ModelWeights::Entry* e = w.find(name);
  if (e == nullptr) fail_input("{}: no tensor '{}' (the vocabulary prior reads it)", w.dir(), name);
  if (!is_float(e->info->dtype) || e->info->shape != shape)
    fail_input("{}: tensor '{}' is {} {}; the vocabulary prior needs a float tensor of {} values", w.dir(), name,
               dtype_name(e->info->dtype), e->info->shape_string(), fmt::join(shape, "×"));
  return *e;
}

}  // namespace

std::vector<double> vocabulary_moments(const std::string& model_dir, ThreadPool& pool) {
  const io::ModelConfig config = io::load_model_config(model_dir);
  const io::ModelWeights weights = io::ModelWeights::open(model_dir);
  const io::LayerSpec layer = io::layer_spec(config, 0);
  const size_t hidden = static_cast<size_t>(layer.hidden), vocab = static_cast<size_t>(config.vocab_size);
  const auto& table = float_tensor(weights, io::model_spec(config, false).embedding.path + ".weight",
                                   {config.vocab_size, layer.hidden});
  const auto& norm = float_tensor(weights, layer.input_norm, {layer.hidden});
  std::vector<float> gamma(hidden);
  kernels::convert_to_f32(norm.info->dtype, weights.bytes(norm).data(), hidden, gamma.data());
  const size_t rows = std::min(vocab, kVocabularyPriorRows), row_bytes = hidden * dtype_size(table.info->dtype);
  std::vector<float> x(rows * hidden);
  const std::span<const uint8_t> bytes = weights.bytes(table);
  pool.parallel_for(rows, 256, [&](size_t begin, size_t end, size_t) {
    for (size_t i = begin; i < end; ++i) {
      const size_t token = i * vocab / rows;  // evenly spaced, the first row first
      float* row = x.data() + i * hidden;
      kernels::convert_to_f32(table.info->dtype, bytes.data() + token * row_bytes, hidden, row);
      kernels::rms_norm(row, gamma.data(), hidden, static_cast<float>(config.rms_norm_eps), row);
    }
  });
  return quant::second_moments_of(x, rows, hidden, pool);
}

void add_vocabulary_prior(quant::RoundingOptions& r, const std::string& model_dir, ThreadPool& pool) {
  if (r.vocab_prior <= 0 || !r.vocabulary_moments.empty()) return;
  const io::LayerSpec layer = io::layer_spec(io::load_model_config(model_dir), 0);
  auto prior = std::make_shared<const std::vector<double>>(vocabulary_moments(model_dir, pool));
  for (const io::LinearSpec* l : {&layer.q, &layer.k, &layer.v}) r.vocabulary_moments[l->path] = prior;
}

}  // namespace quantlab::analysis
