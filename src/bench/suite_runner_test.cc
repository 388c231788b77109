// The suite runner in process: the prompt it renders is the one transformers rendered for the fixture
// (token for token), and greedy replies on the fused model decide as the reference logits say.
#include "bench/suite_runner.h"

#include <gtest/gtest.h>

#include <cstring>

#include "io/safetensors.h"
#include "model/sampler.h"
#include "model/testing.h"
#include "test_support.h"

namespace quantlab::bench {
namespace {

using model::testing::read_tensor;
using namespace quantlab::testing::tool_calling;

struct Fixture {
  std::unique_ptr<chat::ChatModel> chat = chat::ChatModel::open(kFused);
  const text::Tokenizer& tokenizer = chat->tokenizer();
  eval::ToolSet tools = eval::load_tools(kTools);
  eval::Suite dev40 = eval::load_suite(kDev40, &tools);
  ThreadPool pool{2};
};

TEST(SuiteRunner, PromptMatchesTheTransformersRendering) {
  Fixture f;
  SuiteRunner runner(*f.chat, f.pool, {});
  const io::SafetensorsFile ref(kFused + "/reference.safetensors");
  // reference.safetensors' input_ids are the chat prompt of dev40-0 (tests/data/README.md).
  ASSERT_EQ(f.dev40.queries[0].id, "dev40-0");
  EXPECT_EQ(runner.render_prompt(f.dev40.queries[0], f.tools), read_tensor<int32_t>(ref, "input_ids"));
}

TEST(SuiteRunner, FirstReplyTokenFollowsTheReferenceLogits) {
  Fixture f;
  SuiteOptions options;
  options.max_tokens = 4;
  SuiteRunner runner(*f.chat, f.pool, options);
  eval::Suite one = f.dev40;
  one.queries.resize(1);
  const SuiteOutcome out = runner.run(one, f.tools, "test");
  ASSERT_EQ(out.queries.size(), 1u);
  const io::SafetensorsFile ref(kFused + "/reference.safetensors");
  const auto logits = read_tensor<float>(ref, "logits_fused");
  const size_t vocab = logits.size() / read_tensor<int32_t>(ref, "input_ids").size();
  const std::span<const float> last(logits.data() + logits.size() - vocab, vocab);
  const int32_t expected_first = model::argmax(last);
  EXPECT_EQ(f.tokenizer.encode(out.queries[0].reply).front(), expected_first) << out.queries[0].reply;
  EXPECT_EQ(out.queries[0].score.decided_tool, expected_first == *f.tokenizer.token_id("<tool_call>"));
  EXPECT_EQ(out.queries[0].generated_tokens, 4u);
  EXPECT_EQ(out.speed.runs.size(), 1u);
  EXPECT_GT(out.speed.runs[0].decode_tokens, 0u);
  EXPECT_LE(out.harness.model_seconds, out.harness.suite_seconds);
}

}  // namespace
}  // namespace quantlab::bench
