#include "quant/rounding.h"

#include <algorithm>

#include "core/error.h"
#include "quant/convert.h"
#include "quant/quantizer.h"

namespace quantlab::quant {

namespace {

constexpr int64_t kChunkElements = 1 << 20;

// Rows [r0, r1) of a float source tensor as f32.
void read_rows(const io::ModelWeights::Entry& e, int64_t r0, int64_t r1, int64_t cols, std::vector<uint8_t>& raw,
               std::vector<float>& out) {
  const DType dtype = e.info->dtype;
  const size_t n = static_cast<size_t>((r1 - r0) * cols);
  raw.resize(n * dtype_size(dtype));
  e.file->read(*e.info, static_cast<uint64_t>(r0 * cols) * dtype_size(dtype), raw.size(), raw.data());
  out.resize(n);
  load_as_f32_scalar(dtype, raw.data(), n, out.data());
}

// ΔWᵀΔW with ΔW = fused − base.
std::vector<double> delta_gram(const io::ModelWeights::Entry& fused, const io::ModelWeights::Entry& base, int64_t cols) {
  std::vector<uint8_t> raw;
  std::vector<float> b;
  return gram_by_row_chunks(fused.info->numel() / cols, cols, [&](int64_t first, int64_t last, std::vector<float>& f) {
    read_rows(fused, first, last, cols, raw, f);
    read_rows(base, first, last, cols, raw, b);
    for (size_t i = 0; i < f.size(); ++i) f[i] -= b[i];
    return true;
  });
}

}  // namespace

std::vector<double> gram_by_row_chunks(int64_t rows, int64_t cols,
                                       const std::function<bool(int64_t, int64_t, std::vector<float>&)>& fill) {
  std::vector<double> total(static_cast<size_t>(cols * cols), 0.0);
  std::vector<float> chunk;
  for (const RowRange& r : split_rows(rows, cols, kChunkElements)) {
    if (!fill(r.begin, r.end, chunk)) continue;
    const auto part = gram(chunk, static_cast<size_t>(r.end - r.begin), static_cast<size_t>(cols));
    for (size_t i = 0; i < total.size(); ++i) total[i] += part[i];
  }
  return total;
}

std::string_view rounding_method_name(RoundingMethod method) {
  switch (method) {
    case RoundingMethod::kRtn: return "rtn";
    case RoundingMethod::kGptq: return "gptq";
    case RoundingMethod::kDelta: return "delta";
  }
  return "rtn";
}

std::optional<RoundingMethod> find_rounding_method(std::string_view text) {
  for (RoundingMethod m : {RoundingMethod::kRtn, RoundingMethod::kGptq, RoundingMethod::kDelta})
    if (text == rounding_method_name(m)) return m;
  return std::nullopt;
}

RoundingMethod parse_rounding_method(std::string_view text) {
  if (const auto m = find_rounding_method(text)) return *m;
  fail(ErrorKind::kUsage, "--method {}: expected rtn, gptq or delta", text);
}

bool any_calibrated(const std::vector<RoundingMethod>& methods) {
  return std::any_of(methods.begin(), methods.end(), [](RoundingMethod m) { return m != RoundingMethod::kRtn; });
}

RoundingMethod method_of(const OutputTensor& t, const RoundingOptions& options) {
  return t.method.value_or(options.method);
}

bool plan_uses(const QuantPlan& plan, const RoundingOptions& options, RoundingMethod method) {
  for (const OutputTensor& t : plan.tensors)
    if (t.quant && method_of(t, options) == method) return true;
  return false;
}

bool uses_gptq(const OutputTensor& t, const RoundingOptions& options) {
  return method_of(t, options) != RoundingMethod::kRtn && t.quant.has_value() &&
         (options.moments.count(t.module) != 0 || options.routed_inputs.count(t.module) != 0) &&
         t.module.find("embed_tokens") == std::string::npos;
}

namespace {

// One source's E[x xᵀ], checked against the tensor's shape.
std::span<const float> source_moments(const OutputTensor& t, size_t source, const RoundingOptions& options) {
  const std::vector<float>& all = options.moments.at(t.module);
  const size_t cols = static_cast<size_t>(t.cols());
  const size_t square = cols * cols;
  if (all.size() != square * t.sources.size())
    fail_input("the second moments of '{}' hold {} values; its {} source(s) of {} columns need {}", t.module,
               all.size(), t.sources.size(), cols, square * t.sources.size());
  return std::span<const float>(all).subspan(source * square, square);
}

// The inputs routed to expert `source` ([tokens, cols]; one zero row for an expert no token reached:
// every column dead, H = I, round-to-nearest with fitted groups, as the dense form gives it).
std::vector<float> routed_source_inputs(const OutputTensor& t, size_t source, const RoutedInputs& inputs) {
  if (inputs.cols != static_cast<size_t>(t.cols()))
    fail_input("the routed inputs of '{}' have {} columns; the tensor has {}", t.module, inputs.cols, t.cols());
  std::vector<float> x = expert_inputs(inputs, source);
  if (x.empty()) x.assign(inputs.cols, 0.0f);
  return x;
}

// The vocabulary's E[x xᵀ] mixed into `t`'s, or null (not a module reading embedding rows, or no prior).
const std::vector<double>* vocabulary_prior_of(const OutputTensor& t, const RoundingOptions& options) {
  if (options.vocab_prior <= 0) return nullptr;
  const auto it = options.vocabulary_moments.find(t.module);
  return it == options.vocabulary_moments.end() ? nullptr : it->second.get();
}

// ΔWᵀΔW of the source, from the adapter or from fused − base.
std::vector<double> source_delta_gram(const OutputTensor& t, size_t source, const io::ModelWeights& weights,
                                      const io::ModelWeights* base, const RoundingOptions& options) {
  if (options.delta_gram) return options.delta_gram(t.sources[source], t.cols());
  QL_CHECK(base != nullptr, "delta rounding without a base model");
  const std::string& name = t.sources[source];
  const io::ModelWeights::Entry* b = base->find(name);
  const io::ModelWeights::Entry& f = weights.at(name);
  if (b == nullptr) fail_input("{}: the base model has no tensor '{}' (is it the model the fine-tune started from?)",
                               base->dir(), name);
  if (b->info->shape != f.info->shape || !is_float(b->info->dtype))
    fail_input("{}: tensor '{}' is {} {} in the base model but {} in the fused one", base->dir(), name,
               dtype_name(b->info->dtype), b->info->shape_string(), f.info->shape_string());
  return delta_gram(f, *b, t.cols());
}

// H = (1 − w)·H + w·H_vocabulary for the modules that read embedding rows (RoundingOptions::vocab_prior).
void mix_vocabulary_prior(const OutputTensor& t, const RoundingOptions& options, std::vector<double>& h) {
  const auto prior = vocabulary_prior_of(t, options);
  if (!prior) return;
  if (prior->size() != h.size())
    fail_input("the vocabulary prior of '{}' holds {} values; its {} columns need {}", t.module, prior->size(),
               t.cols(), h.size());
  const double w = options.vocab_prior;
  for (size_t i = 0; i < h.size(); ++i) h[i] = (1 - w) * h[i] + w * (*prior)[i];
}

}  // namespace

bool shares_factor(const OutputTensor& a, size_t source_a, const OutputTensor& b, size_t source_b,
                   const RoundingOptions& options) {
  if (method_of(a, options) != RoundingMethod::kGptq || method_of(b, options) != RoundingMethod::kGptq ||
      a.cols() != b.cols())
    return false;
  const auto ra = options.routed_inputs.find(a.module), rb = options.routed_inputs.find(b.module);
  if (ra != options.routed_inputs.end() || rb != options.routed_inputs.end())
    return ra != options.routed_inputs.end() && rb != options.routed_inputs.end() && ra->second == rb->second &&
           source_a == source_b;
  if (vocabulary_prior_of(a, options) != vocabulary_prior_of(b, options)) return false;
  const auto ha = source_moments(a, source_a, options), hb = source_moments(b, source_b, options);
  return std::equal(ha.begin(), ha.end(), hb.begin(), hb.end());
}

std::optional<io::ModelWeights> open_delta_base(const QuantPlan& plan, const RoundingOptions& options) {
  if (!plan_uses(plan, options, RoundingMethod::kDelta) || options.delta_gram) return std::nullopt;
  if (options.base_dir.empty())
    fail(ErrorKind::kUsage, "delta rounding needs the base model (--base) or the adapter (--adapter)");
  return io::ModelWeights::open(options.base_dir);
}

GptqFactor rounding_factor(const OutputTensor& t, size_t source, const io::ModelWeights& weights,
                           const io::ModelWeights* base, const RoundingOptions& options, ThreadPool& pool) {
  const size_t cols = static_cast<size_t>(t.cols());
  std::vector<double> h;
  if (const auto routed = options.routed_inputs.find(t.module); routed != options.routed_inputs.end()) {
    const std::vector<float> x = routed_source_inputs(t, source, *routed->second);
    const size_t tokens = x.size() / cols;
    if (method_of(t, options) == RoundingMethod::kGptq && low_rank_pays(tokens, cols))
      return gptq_low_rank_factor(x, tokens, cols, options.gptq, pool);
    h = second_moments_of(x, tokens, cols, pool);  // many tokens, or delta's full-rank weighting: the dense form
  } else {
    const auto moments = source_moments(t, source, options);
    h.assign(moments.begin(), moments.end());
    mix_vocabulary_prior(t, options, h);
  }
  if (method_of(t, options) == RoundingMethod::kDelta)
    add_delta_weighting(h, source_delta_gram(t, source, weights, base, options), cols, options.delta_weight);
  return gptq_factor(h, cols, options.gptq, pool);
}

}  // namespace quantlab::quant
