// The engine against transformers' own outputs (tests/data, produced by the fixture generator in
// float32): logits of every position and greedy continuations, for every reference architecture and
// storage dtype.
#include <gtest/gtest.h>

#include "core/error.h"
#include "kernels/kernels.h"
#include "model/blocks.h"
#include "model/generation.h"
#include "model/model.h"
#include "model/session.h"
#include "model/testing.h"

namespace quantlab::model {
namespace {

using testing::data_path;
using testing::max_abs_diff;
using testing::read_tensor;

std::vector<float> all_logits(const Model& model, const std::vector<int32_t>& ids, size_t threads = 2) {
  ThreadPool pool(threads);
  Session session(model, pool);
  return session.forward(ids, /*all_logits=*/true);
}

struct ReferenceCase {
  const char* model_dir;
  const char* reference;  // reference.safetensors path, relative to tests/data
  const char* logits_name;
  float tolerance;
};

class ReferenceLogits : public ::testing::TestWithParam<ReferenceCase> {};

TEST_P(ReferenceLogits, MatchTransformers) {
  const ReferenceCase& c = GetParam();
  const Model model = Model::load(data_path(c.model_dir));
  const io::SafetensorsFile ref(data_path(c.reference));
  const auto ids = read_tensor<int32_t>(ref, "input_ids");
  const auto expected = read_tensor<float>(ref, c.logits_name);
  const auto logits = all_logits(model, ids);
  ASSERT_EQ(logits.size(), expected.size());
  EXPECT_LE(max_abs_diff(logits, expected), c.tolerance) << c.model_dir << " vs " << c.logits_name;
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, ReferenceLogits,
    ::testing::Values(
        ReferenceCase{"reference-models/qwen3-tiny", "reference-models/qwen3-tiny/reference.safetensors", "logits", 1e-4f},
        ReferenceCase{"reference-models/qwen3moe-tiny", "reference-models/qwen3moe-tiny/reference.safetensors", "logits", 1e-4f},
        ReferenceCase{"reference-models/llama-tiny", "reference-models/llama-tiny/reference.safetensors", "logits", 1e-4f},
        ReferenceCase{"reference-models/qwen2-tiny", "reference-models/qwen2-tiny/reference.safetensors", "logits", 1e-4f},
        ReferenceCase{"reference-models/qwen3-tiny-lora/merged-f32",
                      "reference-models/qwen3-tiny-lora/reference.safetensors", "logits_merged", 1e-4f},
        ReferenceCase{"tool-calling/dense-fused-strong-f16", "tool-calling/dense-fused-strong-f16/reference.safetensors",
                      "logits_fused", 1e-3f},
        ReferenceCase{"tool-calling/dense-base-f16", "tool-calling/dense-fused-strong-f16/reference.safetensors",
                      "logits_base", 1e-3f},
        ReferenceCase{"tool-calling/moe-fused-strong-f16", "tool-calling/moe-fused-strong-f16/reference.safetensors",
                      "logits_fused", 1e-3f},
        ReferenceCase{"tool-calling/moe-base-f16", "tool-calling/moe-fused-strong-f16/reference.safetensors",
                      "logits_base", 1e-3f}),
    [](const auto& info) {
      std::string name = std::string(info.param.model_dir) + "_" + info.param.logits_name;
      for (char& ch : name)
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return name;
    });

class ReferenceGreedy : public ::testing::TestWithParam<const char*> {};

TEST_P(ReferenceGreedy, ReproducesTransformersTokens) {
  const std::string dir = data_path(std::string("reference-models/") + GetParam());
  const Model model = Model::load(dir);
  const io::SafetensorsFile ref(dir + "/reference.safetensors");
  const auto prompt = read_tensor<int32_t>(ref, "greedy_prompt");
  const auto expected = read_tensor<int32_t>(ref, "greedy_tokens");
  ThreadPool pool(2);
  Session session(model, pool);
  GenerationOptions options;
  options.max_tokens = expected.size();  // no stop tokens: transformers generated a fixed count
  const GenerationResult result = generate(session, prompt, options);
  EXPECT_EQ(result.tokens, expected);
  EXPECT_EQ(result.reason, StopReason::kMaxTokens);
  EXPECT_EQ(session.position(), prompt.size() + expected.size() - 1);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ReferenceGreedy, ::testing::Values("qwen3-tiny", "qwen3moe-tiny", "llama-tiny", "qwen2-tiny"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& ch : name)
                             if (ch == '-') ch = '_';
                           return name;
                         });

// Decoding one token at a time through the cache must give the logits a single prefill gives.
TEST(Session, IncrementalDecodeMatchesPrefill) {
  for (const char* name : {"qwen3-tiny", "qwen3moe-tiny", "llama-tiny"}) {
    const std::string dir = data_path(std::string("reference-models/") + name);
    const Model model = Model::load(dir);
    const io::SafetensorsFile ref(dir + "/reference.safetensors");
    const auto ids = read_tensor<int32_t>(ref, "input_ids");
    const auto expected = read_tensor<float>(ref, "logits");
    ThreadPool pool(2);
    Session session(model, pool);
    const size_t V = model.dims().vocab;
    std::vector<float> stepwise;
    for (int32_t id : ids) {
      const auto row = session.forward(std::span<const int32_t>(&id, 1));
      stepwise.insert(stepwise.end(), row.begin(), row.end());
    }
    ASSERT_EQ(stepwise.size(), ids.size() * V);
    EXPECT_LE(max_abs_diff(stepwise, expected), 1e-4f) << name;
    EXPECT_EQ(session.timings().decode_tokens, ids.size());
  }
}

// Prefill split into chunks, and the last-token-only path, agree with one whole batch.
TEST(Session, ChunkedPrefillAndLastLogitsAgree) {
  const std::string dir = data_path("reference-models/qwen3moe-tiny");
  const Model model = Model::load(dir);
  const io::SafetensorsFile ref(dir + "/reference.safetensors");
  const auto ids = read_tensor<int32_t>(ref, "input_ids");
  const auto expected = read_tensor<float>(ref, "logits");
  ThreadPool pool(2);
  SessionOptions options;
  options.prefill_chunk = 5;
  Session chunked(model, pool, options);
  EXPECT_LE(max_abs_diff(chunked.forward(ids, true), expected), 1e-4f);
  Session last(model, pool);
  const auto last_row = last.forward(ids, false);
  const size_t V = model.dims().vocab;
  const std::vector<float> expected_last(expected.end() - static_cast<ptrdiff_t>(V), expected.end());
  EXPECT_LE(max_abs_diff(last_row, expected_last), 1e-4f);
}

// Layer-streamed calibration runs one layer of a sequence at a time on a stored residual stream: layers
// run in two ranges (the cache reset between them, chunked as forward() chunks) give the stream of one
// pass bit for bit, and that stream, normed and through the head, gives forward()'s logits (to the
// last bit of float32: the head's product over all rows at once sums in another order than per chunk).
TEST(Session, LayersRunInRangesGiveForwardsStreamAndLogits) {
  const std::string dir = data_path("reference-models/qwen3moe-tiny");
  const Model model = Model::load(dir);
  const io::SafetensorsFile ref(dir + "/reference.safetensors");
  const auto ids = read_tensor<int32_t>(ref, "input_ids");
  const size_t H = model.dims().hidden, L = model.dims().layers, n = ids.size();
  ASSERT_GE(L, 2u);
  ThreadPool pool(2);
  SessionOptions options;
  options.prefill_chunk = 5;  // several chunks: the ranges must advance positions as forward() does
  Session session(model, pool, options);
  std::vector<float> embedded(n * H);
  for (size_t i = 0; i < n; ++i)
    kernels::dequantize_row(model.embedding(), static_cast<size_t>(ids[i]), embedded.data() + i * H);
  std::vector<float> whole = embedded, split = embedded;
  session.forward_layers(whole, 0, L);
  session.reset();
  session.forward_layers(split, 0, 1);
  session.reset();
  session.forward_layers(split, 1, L);
  EXPECT_EQ(whole, split);
  EXPECT_NE(whole, embedded);
  std::vector<float> normed(n * H), logits(n * model.dims().vocab);
  rms_norm_rows(whole.data(), model.final_norm(), n, model.dims().rms_eps, normed.data());
  apply_linear(model.output(), normed.data(), n, logits.data(), pool);
  session.reset();
  EXPECT_LE(max_abs_diff(logits, session.forward(ids, true)), 1e-5f);
  std::vector<float> too_many(H);
  EXPECT_THROW(session.forward_layers(too_many, 1, L + 1), Error);
}

// Results may not depend on how many threads run them: bit-identical logits.
TEST(Session, LogitsIndependentOfThreadCount) {
  for (const char* dir : {"reference-models/qwen3moe-tiny", "tool-calling/moe-fused-strong-f16",
                          "reference-models/llama-tiny"}) {
    const Model model = Model::load(data_path(dir));
    std::vector<int32_t> ids;
    for (int32_t i = 0; i < 40; ++i) ids.push_back((i * 37 + 11) % static_cast<int32_t>(model.dims().vocab));
    // Prefill of every position, then one decode step (matvec path) after it.
    auto run = [&](size_t threads) {
      ThreadPool pool(threads);
      Session session(model, pool);
      std::vector<float> out = session.forward(ids, true);
      const int32_t next = 7;
      const auto step = session.forward(std::span<const int32_t>(&next, 1));
      out.insert(out.end(), step.begin(), step.end());
      return out;
    };
    const auto one = run(1);
    for (size_t threads : {2, 3, 5}) {
      const auto many = run(threads);
      ASSERT_EQ(one.size(), many.size());
      EXPECT_EQ(std::memcmp(one.data(), many.data(), one.size() * sizeof(float)), 0)
          << dir << " with " << threads << " threads";
    }
  }
}

TEST(Session, RejectsTokensOutsideVocabularyAndContext) {
  const Model model = Model::load(data_path("reference-models/qwen3-tiny"));
  ThreadPool pool(1);
  SessionOptions options;
  options.max_context = 4;
  Session session(model, pool, options);
  const std::vector<int32_t> bad = {1, 512};
  EXPECT_THROW(session.forward(bad), Error);
  const std::vector<int32_t> five = {1, 2, 3, 4, 5};
  try {
    session.forward(five);
    FAIL() << "expected a context error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find("context"), std::string::npos) << e.what();
  }
}

TEST(Session, MemoryReportCountsCacheAndWeights) {
  const Model model = Model::load(data_path("reference-models/llama-tiny"));
  ThreadPool pool(1);
  Session session(model, pool);
  const std::vector<int32_t> ids = {1, 2, 3};
  session.forward(ids);
  const MemoryReport m = session.memory();
  // llama-tiny is f32 and untied: every stored byte of the file except the header is a weight, and
  // the norm vectors are copied to f32 once more.
  const uint64_t file_bytes = model.weights().disk_bytes();
  EXPECT_GT(m.weights_mapped, file_bytes * 99 / 100);
  EXPECT_LE(m.weights_mapped + m.weights_copied, file_bytes + m.weights_copied);
  EXPECT_EQ(m.weights_copied, (2 * 2 + 1) * 128 * sizeof(float));
  // 2 layers x (K and V) x reserved positions x kv_dim (2 heads x 32) x 4 bytes, positions rounded up
  // to the growth step.
  EXPECT_EQ(m.kv_cache, 2u * 2 * 256 * 64 * 4);
  EXPECT_GT(m.scratch, 0u);
  EXPECT_GT(m.weights_resident, 0u);
}

}  // namespace
}  // namespace quantlab::model
