// The chat layer: stop tokens from the files a model directory ships, a directory opened once, and
// the decode hooks (logits of each step, routing of each MoE layer) seeing what the engine computed.
#include "chat/chat_model.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/sampler.h"
#include "test_support.h"

namespace quantlab::chat {
namespace {

using testing::data_path;
using namespace quantlab::testing::tool_calling;

TEST(StopTokens, FromGenerationConfigThenConfig) {
  const std::string fused = data_path("tool-calling/dense-fused-strong-f16");
  const text::Tokenizer tok = text::Tokenizer::from_file(fused);
  EXPECT_EQ(load_stop_tokens(fused, io::load_model_config(fused), &tok), (std::vector<int32_t>{1026, 1024}));
  const std::string llama = data_path("reference-models/llama-tiny");
  EXPECT_EQ(load_stop_tokens(llama, io::load_model_config(llama), nullptr), (std::vector<int32_t>{2}));
  const std::string qwen = data_path("reference-models/qwen3-tiny");  // eos_token_id null, no tokenizer
  EXPECT_TRUE(load_stop_tokens(qwen, io::load_model_config(qwen), nullptr).empty());
}

TEST(StopTokens, FromTokenizerConfigWhenNothingElseSays) {
  testing::TempDir tmp;
  const std::string src = data_path("tool-calling/dense-fused-strong-f16");
  std::filesystem::create_directories(tmp / "m");
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    std::filesystem::copy_file(src + "/" + f, tmp / ("m/" + std::string(f)));
  io::ModelConfig config;  // no eos ids
  const text::Tokenizer tok = text::Tokenizer::from_file(tmp / "m");
  // tokenizer_config.json: eos_token "<|im_end|>", which tokenizer.json's added tokens give id 1026.
  EXPECT_EQ(load_stop_tokens(tmp / "m", config, &tok), (std::vector<int32_t>{1026}));
  EXPECT_TRUE(load_stop_tokens(tmp / "m", config, nullptr).empty());
}

TEST(ChatModel, OpensConfigAndEveryHeaderOnce) {
  const io::ReadCounters before = io::read_counters();
  const auto chat = ChatModel::open(kFused);
  chat->chat_template();
  const io::ReadCounters after = io::read_counters();
  EXPECT_EQ(after.config_files - before.config_files, 1u);
  EXPECT_EQ(after.safetensors_headers - before.safetensors_headers, chat->weights().files().size());
  EXPECT_EQ(chat->stop_tokens(), (std::vector<int32_t>{1026, 1024}));
}

TEST(ChatModel, ModelWithoutTokenizerRunsOnIds) {
  const auto chat = ChatModel::open(data_path("reference-models/qwen3-tiny"));
  EXPECT_FALSE(chat->has_tokenizer());
  EXPECT_THROW(chat->tokenizer(), Error);
}

TEST(Respond, LogitsHookSeesEveryStepAndStepZeroIsThePrefill) {
  const auto chat = ChatModel::open(kFused);
  ThreadPool pool(2);
  text::ChatRequest request;
  request.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", "What is 2 + 2?"}}});
  const std::vector<int32_t> prompt = chat->encode_chat(request);
  model::Session plain(chat->model(), pool);
  const std::vector<float> prefill = plain.forward(prompt);

  model::Session session(chat->model(), pool);
  std::vector<std::vector<float>> seen;
  DecodeHooks hooks;
  hooks.on_logits = [&](size_t step, std::span<const float> logits) {
    EXPECT_EQ(step, seen.size());
    seen.emplace_back(logits.begin(), logits.end());
  };
  const model::GenerationResult r = respond(session, prompt, greedy_options(*chat, 5), hooks);
  ASSERT_EQ(seen.size(), r.tokens.size());
  EXPECT_EQ(seen[0], prefill);
  for (size_t i = 0; i < r.tokens.size(); ++i) EXPECT_EQ(r.tokens[i], model::argmax(seen[i])) << i;
}

TEST(Respond, RoutingHookSeesEveryMoeLayerOfEveryToken) {
  const std::string moe = data_path("tool-calling/moe-fused-strong-f16");
  const auto chat = ChatModel::open(moe);
  ThreadPool pool(2);
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6};
  const size_t generated_max = 3;
  model::Session session(chat->model(), pool);
  std::map<size_t, size_t> tokens_per_layer;
  const auto& dims = chat->model().dims();
  DecodeHooks hooks;
  hooks.on_routing = [&](const model::RoutingEvent& e) {
    tokens_per_layer[e.layer] += e.tokens;
    ASSERT_EQ(e.chosen.size(), e.tokens * dims.experts_per_token);
    ASSERT_EQ(e.probabilities.size(), e.tokens * dims.experts);
    for (size_t t = 0; t < e.tokens; ++t) {
      std::set<int32_t> distinct;
      for (size_t k = 0; k < e.experts_per_token; ++k) {
        const int32_t x = e.chosen[t * e.experts_per_token + k];
        ASSERT_GE(x, 0);
        ASSERT_LT(static_cast<size_t>(x), e.experts);
        distinct.insert(x);
        // The chosen experts are the most probable ones, highest first.
        if (k > 0) {
          EXPECT_GE(e.probabilities[t * e.experts + e.chosen[t * e.experts_per_token + k - 1]],
                    e.probabilities[t * e.experts + x]);
        }
      }
      EXPECT_EQ(distinct.size(), e.experts_per_token);
    }
  };
  model::GenerationOptions options = greedy_options(*chat, generated_max);
  options.stop_tokens.clear();
  const model::GenerationResult r = respond(session, prompt, options, hooks);
  size_t moe_layers = 0;
  for (const auto& layer : chat->model().layers()) moe_layers += layer.is_moe;
  ASSERT_GT(moe_layers, 0u);
  EXPECT_EQ(tokens_per_layer.size(), moe_layers);
  // Every prompt token and every generated token but the last (never fed back) passed each layer.
  for (const auto& [layer, n] : tokens_per_layer) EXPECT_EQ(n, prompt.size() + r.tokens.size() - 1) << layer;
  // The hook is the reply's own: a later forward pass reports nothing.
  tokens_per_layer.clear();
  const int32_t next = 7;
  session.forward(std::span<const int32_t>(&next, 1));
  EXPECT_TRUE(tokens_per_layer.empty());
}

}  // namespace
}  // namespace quantlab::chat
