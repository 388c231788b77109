// `quantlab generate` and `quantlab logits` through the real binary: outputs that match the reference
// fixtures, flags, exit codes and no partial output.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_support.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "model/testing.h"

namespace quantlab::testing {
namespace {

namespace fs = std::filesystem;

using model::testing::read_tensor;

std::string join_ids(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

TEST(LogitsCommand, WritesReferenceLogits) {
  const std::string model = data_path("reference-models/qwen3moe-tiny");
  const io::SafetensorsFile ref(model + "/reference.safetensors");
  const auto ids = read_tensor<int32_t>(ref, "input_ids");
  const auto expected = read_tensor<float>(ref, "logits");
  TempDir tmp;
  const RunResult r = run_quantlab("logits " + shell_quote(model) + " --ids " + join_ids(ids) + " --out " +
                                   shell_quote(tmp / "l.safetensors") + " --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const io::SafetensorsFile out(tmp / "l.safetensors");
  EXPECT_EQ(out.at("logits").shape, (std::vector<int64_t>{24, 512}));
  EXPECT_EQ(out.at("logits").dtype, DType::kF32);
  const auto logits = read_tensor<float>(out, "logits");
  ASSERT_EQ(logits.size(), expected.size());
  float worst = 0;
  for (size_t i = 0; i < logits.size(); ++i) worst = std::max(worst, std::fabs(logits[i] - expected[i]));
  EXPECT_LE(worst, 1e-4f);
  EXPECT_EQ(read_tensor<int32_t>(out, "input_ids"), ids);
  // Only the output file is left in the directory (no staging directory, no index).
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()), 1);
}

// --compute int8 and bf16 (docs/compute-paths.md) change the products of quantized matrices only: a
// float checkpoint's logits are the exact path's byte for byte, a quantized one's move by the activation
// rounding (a little: same argmax at every position here) and generate --json names the path.
TEST(LogitsCommand, RoundedComputePathsChangeOnlyQuantizedMatrices) {
  const std::string model = data_path("reference-models/qwen3moe-tiny");
  const std::string ids = "1,5,9,200,31,77,400,12,3,18,250,6,90,41";
  TempDir tmp;
  const std::string quantized = tmp / "q8";
  ASSERT_EQ(run_quantlab("quantize " + shell_quote(model) + " " + shell_quote(quantized) + " --bits 8 --quiet").exit_code, 0);
  auto logits = [&](const std::string& dir, const std::string& compute) {
    const std::string out = tmp / (compute + fs::path(dir).filename().string() + ".safetensors");
    const RunResult r = run_quantlab("logits " + shell_quote(dir) + " --ids " + ids + " --compute " + compute + " --out " + shell_quote(out));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return read_tensor<float>(io::SafetensorsFile(out), "logits");
  };
  const auto exact = logits(quantized, "exact"), float_exact = logits(model, "exact");
  for (const std::string path : {"int8", "bf16"}) {
    SCOPED_TRACE(path);
    EXPECT_EQ(float_exact, logits(model, path));
    const auto rounded = logits(quantized, path);
    ASSERT_EQ(exact.size(), rounded.size());
    EXPECT_NE(exact, rounded);
    const size_t vocab = 512;
    for (size_t i = 0; i < exact.size() / vocab; ++i) {
      const auto row = [&](const std::vector<float>& l) { return std::max_element(l.begin() + i * vocab, l.begin() + (i + 1) * vocab) - l.begin(); };
      EXPECT_EQ(row(exact), row(rounded)) << "position " << i;
    }
    const RunResult g = run_quantlab("generate " + shell_quote(quantized) + " --ids " + ids + " --max-tokens 2 --compute " + path + " --json");
    ASSERT_EQ(g.exit_code, 0) << g.err;
    const auto j = nlohmann::json::parse(g.out);
    EXPECT_EQ(j["compute"], path);
    EXPECT_FALSE(j["compute_kernel"].get<std::string>().empty());
  }
  const RunResult bad = run_quantlab("generate " + shell_quote(quantized) + " --ids 1 --compute fp8");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("quantlab: error:"), std::string::npos) << bad.err;
}

TEST(LogitsCommand, BadInputFailsWithoutOutput) {
  TempDir tmp;
  const std::string model = shell_quote(data_path("reference-models/qwen3-tiny"));
  const std::string out = shell_quote(tmp / "l.safetensors");
  RunResult r = run_quantlab("logits " + model + " --ids 1,x,3 --out " + out);
  EXPECT_EQ(r.exit_code, kUsage);
  EXPECT_NE(r.err.find("'x'"), std::string::npos) << r.err;
  r = run_quantlab("logits " + model + " --ids 1,9999 --out " + out);
  EXPECT_EQ(r.exit_code, kUsage);
  EXPECT_NE(r.err.find("9999"), std::string::npos) << r.err;
  r = run_quantlab("logits " + shell_quote(tmp.path()) + " --ids 1 --out " + out);
  EXPECT_EQ(r.exit_code, kInvalid);
  EXPECT_NE(r.err.find("config.json"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "l.safetensors"));
  EXPECT_EQ(run_quantlab("logits --help").exit_code, 0);
}

TEST(GenerateCommand, MoeJsonCountsTheExpertsTheDecodeStepsReached) {
  const std::string model = data_path("reference-models/qwen3moe-tiny");
  const io::ModelConfig config = io::load_model_config(model);
  const RunResult r = run_quantlab("generate " + shell_quote(model) +
                                   " --ids 3,1,4,1,5 --max-tokens 10 --ignore-eos --json --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const auto& routing = j["routing"];
  int64_t moe_layers = 0;
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) moe_layers += config.is_moe_layer(l);
  EXPECT_EQ(routing["moe_layers"].get<int64_t>(), moe_layers);
  EXPECT_EQ(routing["experts"].get<int64_t>(), config.num_experts);
  EXPECT_EQ(routing["decode_tokens"], j["stats"]["decode"]["tokens"]);  // 9: the prompt is left out
  const auto& distinct = routing["distinct_experts_per_layer"];
  const int64_t k = config.num_experts_per_tok, most = std::min<int64_t>(config.num_experts, 9 * k);
  EXPECT_GE(distinct["min"].get<int64_t>(), k);
  EXPECT_LE(distinct["max"].get<int64_t>(), most);
  EXPECT_GE(distinct["mean"].get<double>(), distinct["min"].get<double>());
  // A dense model has no routing block.
  const RunResult dense = run_quantlab("generate " + shell_quote(data_path("reference-models/llama-tiny")) +
                                       " --ids 3,1,4 --max-tokens 2 --json --threads 1");
  ASSERT_EQ(dense.exit_code, 0) << dense.err;
  EXPECT_FALSE(nlohmann::json::parse(dense.out).contains("routing"));
}

TEST(GenerateCommand, GreedyJsonReproducesReferenceTokens) {
  const std::string model = data_path("reference-models/llama-tiny");
  const io::SafetensorsFile ref(model + "/reference.safetensors");
  const auto prompt = read_tensor<int32_t>(ref, "greedy_prompt");
  const auto expected = read_tensor<int32_t>(ref, "greedy_tokens");
  const RunResult r = run_quantlab("generate " + shell_quote(model) + " --ids " + join_ids(prompt) +
                                   " --max-tokens 16 --ignore-eos --json --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tokens"].get<std::vector<int32_t>>(), expected);
  EXPECT_EQ(j["stop_reason"], "max_tokens");
  EXPECT_EQ(j["stats"]["prefill"]["tokens"], prompt.size());
  EXPECT_EQ(j["stats"]["decode"]["tokens"], expected.size() - 1);
  // The median gap between tokens: a decode step's time, within the decode phase's total.
  const double median = j["stats"]["decode"]["median_token_seconds"].get<double>();
  EXPECT_GT(median, 0.0);
  EXPECT_LE(median, j["stats"]["decode"]["seconds"].get<double>());
  EXPECT_GT(j["stats"]["memory_bytes"]["kv_cache"].get<uint64_t>(), 0u);
}

TEST(GenerateCommand, PromptTextGoesThroughTheTokenizer) {
  const std::string model = shell_quote(data_path("tool-calling/dense-fused-strong-f16"));
  const RunResult r = run_quantlab("generate " + model + " --prompt 'How many hours are in a day?' "
                                   "--max-tokens 3 --ignore-eos --json --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_GE(j["prompt_tokens"].size(), 5u);
  EXPECT_EQ(j["tokens"].size(), 3u);
  EXPECT_TRUE(j["text"].is_string());
}

// The fused tool-calling model on its reference chat prompt (dev40-0, a direct-answer query): the
// first token is the argmax of transformers' last-position logits, and generation ends on a stop
// token from generation_config.json (<|im_end|> 1026 or <|endoftext|> 1024).
TEST(GenerateCommand, ChatPromptAnswersAndStopsAtEos) {
  const std::string model = data_path("tool-calling/dense-fused-strong-f16");
  const io::SafetensorsFile ref(model + "/reference.safetensors");
  const auto ids = read_tensor<int32_t>(ref, "input_ids");
  const auto logits = read_tensor<float>(ref, "logits_fused");
  const size_t vocab = logits.size() / ids.size();
  const auto last = logits.end() - static_cast<ptrdiff_t>(vocab);
  const int32_t expected_first = static_cast<int32_t>(std::max_element(last, logits.end()) - last);
  const RunResult r = run_quantlab("generate " + shell_quote(model) + " --ids " + join_ids(ids) +
                                   " --max-tokens 200 --json --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const auto tokens = j["tokens"].get<std::vector<int32_t>>();
  ASSERT_FALSE(tokens.empty());
  EXPECT_EQ(tokens.front(), expected_first);
  EXPECT_NE(tokens.front(), 1027) << "a direct query must not start a <tool_call>";
  EXPECT_EQ(j["stop_reason"], "stop_token") << j["text"];
  EXPECT_TRUE(tokens.back() == 1026 || tokens.back() == 1024) << tokens.back();
}

TEST(GenerateCommand, SamplingIsReproducibleWithASeed) {
  const std::string base = "generate " + shell_quote(data_path("reference-models/qwen3-tiny")) +
                           " --ids 5,6,7 --max-tokens 12 --temperature 1.0 --top-p 0.9 --top-k 50 --json";
  const auto a = nlohmann::json::parse(run_quantlab(base + " --seed 3 --threads 1").out);
  const auto b = nlohmann::json::parse(run_quantlab(base + " --seed 3 --threads 2").out);
  const auto c = nlohmann::json::parse(run_quantlab(base + " --seed 4 --threads 2").out);
  EXPECT_EQ(a["tokens"], b["tokens"]);
  EXPECT_NE(a["tokens"], c["tokens"]);
}

TEST(GenerateCommand, UsageErrors) {
  const std::string model = shell_quote(data_path("reference-models/qwen3-tiny"));
  EXPECT_EQ(run_quantlab("generate " + model).exit_code, kUsage);  // neither --ids nor --prompt
  const RunResult no_tokenizer = run_quantlab("generate " + model + " --prompt hi");
  EXPECT_EQ(no_tokenizer.exit_code, kUsage);
  EXPECT_NE(no_tokenizer.err.find("tokenizer.json"), std::string::npos) << no_tokenizer.err;
  EXPECT_EQ(run_quantlab("generate " + model + " --ids 1 --prompt hi").exit_code, kUsage);
  EXPECT_EQ(run_quantlab("generate --help").exit_code, 0);
}

}  // namespace
}  // namespace quantlab::testing
