// The plan's prediction for a directory as benched, checked against the directory's own files: the
// tensor bytes are exact, the files differ from them by their headers only, decode reads every weight
// once except the routed experts (k of E) and the embedding (one row), and the KV cache follows the
// config at the bench's context. A directory the plan cannot describe gives a warning, not an error.
#include "bench/plan_prediction.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/session.h"
#include "quant/size_plan.h"
#include "quant/testing.h"
#include "test_support.h"

namespace quantlab::bench {
namespace {

namespace fs = std::filesystem;
using testing::data_path;
using testing::TempDir;

const std::string kDense = testing::tool_calling::kFused;
const std::string kMoe = data_path("reference-models/qwen3moe-tiny");

using testing::weight_files;
using testing::WeightFiles;

nlohmann::json config_of(const std::string& dir) { return nlohmann::json::parse(read_text_file(dir + "/config.json")); }

std::string quantize(const std::string& in, const std::string& out, int bits, int group) {
  return quant::test_helpers::quantize_for_test(in, out, bits, group);
}

quant::RuntimeAssumptions runtime(int64_t context, int64_t batch, size_t threads) {
  quant::RuntimeAssumptions r;
  r.context = context;
  r.prefill_chunk = batch;
  r.threads = threads;
  return r;
}

// Weight bytes one decode step reads, summed from the stored tensors themselves: routed experts k of
// E (stacked switch_mlp or per-expert tensors), the embedding one row (and all of it again when it is
// also the output head), everything else once.
uint64_t bytes_read_per_token(const std::string& dir) {
  const nlohmann::json c = config_of(dir);
  const auto weights = io::ModelWeights::open(dir);
  const uint64_t vocab = c["vocab_size"], k = c.value("num_experts_per_tok", 0);
  const uint64_t experts = c.value("num_experts", c.value("num_local_experts", 0));  // transformers v4 / v5 names
  uint64_t total = 0, routed = 0;
  for (const std::string& name : weights.names()) {
    const uint64_t n = weights.at(name).info->nbytes;
    if (name.find(".switch_mlp.") != std::string::npos || name.find(".mlp.experts.") != std::string::npos)
      routed += n;
    else if (name.rfind("model.embed_tokens.", 0) == 0)
      total += n / vocab + (c.value("tie_word_embeddings", false) ? n : 0);
    else
      total += n;
  }
  return total + (experts ? routed / experts * k : 0);
}

TEST(PlanPrediction, QuantizedDirectoryAtItsOwnSetting) {
  TempDir tmp;
  for (const std::string& source : {kDense, kMoe}) {
    SCOPED_TRACE(source);
    const std::string dir = quantize(source, tmp / fs::path(source).filename().string(), 6, 64);
    const PlanOutcome out = predict_as_benched(dir, runtime(300, 120, 2));
    ASSERT_TRUE(out.plan.has_value()) << out.warning;
    EXPECT_EQ(out.warning, "");
    const eval::PlanPrediction& p = *out.plan;
    EXPECT_EQ(p.bits, 6);
    EXPECT_EQ(p.group_size, 64);
    const WeightFiles f = weight_files(dir);
    EXPECT_EQ(p.tensor_bytes, f.bytes - f.header_bytes);  // exact
    EXPECT_NEAR(double(p.disk_bytes()), double(f.bytes), double(f.header_bytes));
    EXPECT_EQ(p.bytes_per_token, bytes_read_per_token(dir));
    EXPECT_EQ(p.context, 300u);
    EXPECT_EQ(p.prefill_batch, 120u);
    EXPECT_EQ(p.threads, 2u);
    const nlohmann::json c = config_of(source);
    const uint64_t head_dim = c.value("head_dim", uint64_t(c["hidden_size"]) / uint64_t(c["num_attention_heads"]));
    EXPECT_EQ(p.kv_cache_bytes, 2ull * uint64_t(c["num_hidden_layers"]) * uint64_t(c["num_key_value_heads"]) *
                                    head_dim * sizeof(float) * 300);
    EXPECT_EQ(p.bandwidth_gb_per_s, 0);  // the parent stamps the run's bandwidth
  }
}

// The plan's scratch mirrors model::Scratch: after a prompt of P tokens and D decode steps at T threads,
// the engine holds exactly the scratch the plan predicts for context P + D, batch P, T threads (dense, and
// MoE whose decode runs the k experts side by side).
TEST(PlanPrediction, ScratchEqualsTheEnginesAfterPrefillAndDecode) {
  for (const std::string& dir : {kDense, kMoe}) {
    SCOPED_TRACE(dir);
    const model::Model m = model::Model::load(dir);
    ThreadPool pool(2);
    model::Session session(m, pool);
    std::vector<int32_t> prompt(37);
    for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>(i % 50 + 1);
    session.forward(prompt);
    for (int32_t t = 0; t < 5; ++t) session.forward(std::vector<int32_t>{t + 3});
    const quant::SizeEstimate e = quant::estimate_as_stored(quant::load_plan_source(dir), runtime(42, 37, 2));
    EXPECT_EQ(session.memory().scratch, e.scratch_bytes);
  }
}

// A float directory is predicted as stored: nothing quantized, every tensor in its own dtype.
TEST(PlanPrediction, FloatDirectoryAsStored) {
  for (const std::string& dir : {kDense, kMoe}) {
    SCOPED_TRACE(dir);
    const PlanOutcome out = predict_as_benched(dir, runtime(64, 64, 1));
    ASSERT_TRUE(out.plan.has_value()) << out.warning;
    EXPECT_EQ(out.plan->bits, 0);
    const WeightFiles f = weight_files(dir);
    EXPECT_EQ(out.plan->tensor_bytes, f.bytes - f.header_bytes);
    EXPECT_EQ(out.plan->bytes_per_token, bytes_read_per_token(dir));
  }
}

// mlx-lm's mixed recipes give some modules their own width. An 8-bit g64 module stores the same shapes
// as a 4-bit g128 one, so rewriting config.json is enough to make a consistent mixed directory. The
// plan reads the per-module entries as the plan they were made with (issue 14) and predicts that
// directory as exactly as a uniform one (the bench CLI test checks a mixed model whose sizes differ).
TEST(PlanPrediction, PerModuleWidthsArePredictedExactly) {
  TempDir tmp;
  const std::string dir = quantize(kDense, tmp / "q8", 8, 64);
  const PlanOutcome uniform = predict_as_benched(dir, runtime(64, 64, 1));
  ASSERT_TRUE(uniform.plan.has_value());
  nlohmann::json c = config_of(dir);
  for (const char* key : {"quantization", "quantization_config"})
    if (c.contains(key)) c[key]["model.layers.0.self_attn.q_proj"] = {{"bits", 4}, {"group_size", 128}};
  std::ofstream(dir + "/config.json") << c.dump(2);
  const PlanOutcome out = predict_as_benched(dir, runtime(64, 64, 1));
  ASSERT_TRUE(out.plan.has_value()) << out.warning;
  EXPECT_EQ(out.warning, "");
  const WeightFiles f = weight_files(dir);
  EXPECT_EQ(out.plan->tensor_bytes, f.bytes - f.header_bytes);  // same bytes: 8/64 and 4/128 store alike
  EXPECT_EQ(out.plan->bits, 8);
  EXPECT_EQ(out.plan->group_size, 64);
  // An entry naming a module the checkpoint does not have cannot be a plan of it.
  for (const char* key : {"quantization", "quantization_config"})
    if (c.contains(key)) c[key]["model.layers.0.self_attn.no_such_proj"] = {{"bits", 4}, {"group_size", 64}};
  std::ofstream(dir + "/config.json") << c.dump(2);
  const PlanOutcome bad = predict_as_benched(dir, runtime(64, 64, 1));
  EXPECT_FALSE(bad.plan.has_value());
  EXPECT_NE(bad.warning.find("no_such_proj"), std::string::npos) << bad.warning;
}

TEST(PlanPrediction, BrokenDirectoryGivesAWarning) {
  TempDir tmp;
  std::ofstream(tmp / "config.json") << "{\"model_type\": \"qwen3\", ";
  const PlanOutcome out = predict_as_benched(tmp.path(), runtime(64, 64, 1));
  EXPECT_FALSE(out.plan.has_value());
  EXPECT_NE(out.warning.find("config.json"), std::string::npos) << out.warning;
}

}  // namespace
}  // namespace quantlab::bench
