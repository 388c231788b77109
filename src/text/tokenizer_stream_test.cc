#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "text/byte_level.h"
#include "text/tokenizer.h"

namespace quantlab::text {
namespace {

const Tokenizer& qwen3() {
  static const Tokenizer tokenizer =
      Tokenizer::from_file(std::string(QUANTLAB_TEST_DATA) + "/tokenizers/qwen3/tokenizer.json");
  return tokenizer;
}

std::string stream(const std::vector<int32_t>& ids, bool skip_special) {
  StreamingDetokenizer detokenizer(qwen3(), skip_special);
  std::string text;
  for (int32_t id : ids) text += detokenizer.push(id);
  return text + detokenizer.finish();
}

TEST(StreamingDetokenizer, ConcatenationEqualsDecodeOnGoldenIds) {
  std::ifstream in(std::string(QUANTLAB_TEST_DATA) + "/tokenizers/golden/qwen3-golden.jsonl");
  std::string line;
  int rows = 0;
  while (std::getline(in, line)) {
    const auto ids = nlohmann::json::parse(line).at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(stream(ids, false), qwen3().decode(ids)) << line;
    EXPECT_EQ(stream(ids, true), qwen3().decode(ids, true)) << line;
    ++rows;
  }
  EXPECT_EQ(rows, 333);
}

TEST(StreamingDetokenizer, HoldsBackIncompleteCharacters) {
  // "🌍" = F0 9F 8C 8D sent as four single-byte tokens.
  std::vector<int32_t> ids;
  for (uint8_t byte : {0xF0, 0x9F, 0x8C, 0x8D}) {
    const auto id = qwen3().token_id(ByteLevelAlphabet::get().utf8_of(byte));
    ASSERT_TRUE(id.has_value());
    ids.push_back(*id);
  }
  StreamingDetokenizer detokenizer(qwen3());
  EXPECT_EQ(detokenizer.push(ids[0]), "");
  EXPECT_EQ(detokenizer.push(ids[1]), "");
  EXPECT_EQ(detokenizer.push(ids[2]), "");
  EXPECT_EQ(detokenizer.push(ids[3]), "\xF0\x9F\x8C\x8D");
  EXPECT_EQ(detokenizer.finish(), "");

  StreamingDetokenizer cut_short(qwen3());
  EXPECT_EQ(cut_short.push(ids[0]), "");
  EXPECT_EQ(cut_short.push(ids[1]), "");
  EXPECT_EQ(cut_short.finish(), "\xEF\xBF\xBD");  // the incomplete character becomes U+FFFD
}

}  // namespace
}  // namespace quantlab::text
