#include "text/pretokenize.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace quantlab::text {
namespace {

// The Qwen2/Qwen3 split pattern (model-spec §4.1).
constexpr std::string_view kQwenPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::vector<std::string> split(const PreTokenizer& pre, std::string_view text) {
  std::vector<std::string_view> pieces;
  std::string storage;
  pre.split(text, pieces, storage);
  return {pieces.begin(), pieces.end()};
}

PreTokenizer qwen_pre_tokenizer() {
  std::vector<Regex> splits;
  splits.emplace_back(kQwenPattern, false, "test");
  return PreTokenizer(std::move(splits), {});
}

TEST(PreTokenizer, QwenPatternSpecExample) {
  // model-spec §4.6 "don't I'LL 3.14159\r\n\n  x": the contraction group is case-insensitive, so
  // "'LL" is one pre-token (BPE then splits it into ' and LL); digits are one per pre-token.
  EXPECT_EQ(split(qwen_pre_tokenizer(), "don't I'LL 3.14159\r\n\n  x"),
            (std::vector<std::string>{"don", "'t", " I", "'LL", " ", "3", ".", "1", "4", "1",
                                      "5", "9", "\r\n\n", " ", " x"}));
}

TEST(PreTokenizer, LastSpaceOfARunPrefixesTheNextWord) {
  EXPECT_EQ(split(qwen_pre_tokenizer(), "a   b"), (std::vector<std::string>{"a", "  ", " b"}));
  EXPECT_EQ(split(qwen_pre_tokenizer(), "x\n\n\ny"), (std::vector<std::string>{"x", "\n\n\n", "y"}));
}

TEST(PreTokenizer, UnicodeClassesAreUnicodeAware) {
  // \p{L} covers CJK and accented letters; U+3000 (ideographic space) is neither letter nor
  // newline, so like an ASCII space it prefixes the following word.
  EXPECT_EQ(split(qwen_pre_tokenizer(), "über 你好\xE3\x80\x80ok"),
            (std::vector<std::string>{"über", " 你好", "\xE3\x80\x80ok"}));
  EXPECT_EQ(split(qwen_pre_tokenizer(), "a\xE3\x80\x80\xE3\x80\x80" "b"),
            (std::vector<std::string>{"a", "\xE3\x80\x80", "\xE3\x80\x80" "b"}));
}

TEST(PreTokenizer, InvalidBytesNeverMatchAndBecomeTheirOwnPieces) {
  EXPECT_EQ(split(qwen_pre_tokenizer(), "ab\xFF" "cd"),
            (std::vector<std::string>{"ab", "\xFF", "cd"}));
  EXPECT_EQ(split(qwen_pre_tokenizer(), "\xC3"), (std::vector<std::string>{"\xC3"}));
}

TEST(PreTokenizer, Gpt2ByteLevelRegexAndPrefixSpace) {
  const PreTokenizer gpt2({}, {.add_prefix_space = false, .use_regex = true});
  EXPECT_EQ(split(gpt2, "Hello world's 123"),
            (std::vector<std::string>{"Hello", " world", "'s", " 123"}));
  const PreTokenizer prefixed({}, {.add_prefix_space = true, .use_regex = true});
  EXPECT_EQ(split(prefixed, "Hello world"), (std::vector<std::string>{" Hello", " world"}));
  EXPECT_EQ(split(prefixed, " Hi"), (std::vector<std::string>{" Hi"}));  // already has one
}

TEST(PreTokenizer, LiteralSplitAndEmptyInput) {
  std::vector<Regex> splits;
  splits.emplace_back("a.b", true, "test");  // literal: the dot is not a wildcard
  const PreTokenizer literal(std::move(splits), {});
  EXPECT_EQ(split(literal, "xa.bya_b"), (std::vector<std::string>{"x", "a.b", "ya_b"}));
  EXPECT_TRUE(split(literal, "").empty());
}

TEST(Regex, BadPatternIsAnInputErrorWithContext) {
  try {
    Regex bad("(unclosed", false, "tok.json: pre_tokenizer Split");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("tok.json: pre_tokenizer Split"), std::string::npos);
  }
}

}  // namespace
}  // namespace quantlab::text
