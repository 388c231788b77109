// Fuzz-style tests with fixed seeds: random bytes and random Unicode never crash, every id is in
// range, the ids' bytes reproduce the (NFC-normalized) input exactly, and decode round-trips.
#include <gtest/gtest.h>

#include <random>
#include <thread>
#include <string>
#include <vector>

#include "text/testing.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace quantlab::text {
namespace {

using test_fixtures::qwen3;
using test_fixtures::tool_calling;

const std::string kData = QUANTLAB_TEST_DATA;

std::string bytes_of(const Tokenizer& tokenizer, const std::vector<int32_t>& ids) {
  std::string bytes;
  for (int32_t id : ids) {
    EXPECT_GE(id, 0);
    EXPECT_LT(static_cast<size_t>(id), tokenizer.vocab_size());
    bytes.append(tokenizer.token_bytes(id));
  }
  return bytes;
}

void expect_lossless(const Tokenizer& tokenizer, const std::string& text) {
  const std::vector<int32_t> ids = tokenizer.encode(text);
  const std::string normalized = nfc_normalize(text);
  ASSERT_EQ(bytes_of(tokenizer, ids), normalized) << testing::PrintToString(text);
  ASSERT_EQ(tokenizer.decode(ids), utf8_lossy(normalized)) << testing::PrintToString(text);
}

// Bytes biased towards the interesting: ASCII, UTF-8 lead and continuation bytes, whitespace.
std::string random_bytes(std::mt19937& rng) {
  static const std::string kFavourites = " \t\r\n'aZ0.<|>\xC3\xA9\xE4\xBD\xA0\xF0\x9F\x80\xBF\xFF\xCC\x81";
  std::string text(rng() % 48, '\0');
  for (char& c : text) {
    c = rng() % 2 ? kFavourites[rng() % kFavourites.size()] : static_cast<char>(rng() % 256);
  }
  return text;
}

char32_t random_code_point(std::mt19937& rng) {
  struct Range {
    char32_t first;
    char32_t last;
  };
  static const Range kRanges[] = {
      {0x20, 0x7E},    {0x09, 0x0D},    {0xA0, 0x17F},   {0x300, 0x36F},  // combining marks
      {0x600, 0x6FF},  {0x900, 0x97F},  {0x1100, 0x1112}, {0x1161, 0x1175},  // Hangul jamo
      {0x2000, 0x200D}, {0x3000, 0x3000}, {0x4E00, 0x4FFF}, {0xAC00, 0xAD00},
      {0x1F300, 0x1F64F}, {0x1F3FB, 0x1F3FF}, {0x85, 0x85}, {0xFFF0, 0xFFFD}, {0x10000, 0x10FFF},
  };
  const Range& range = kRanges[rng() % std::size(kRanges)];
  return range.first + rng() % (range.last - range.first + 1);
}

std::string random_unicode(std::mt19937& rng) {
  std::string text;
  const size_t length = rng() % 40;
  for (size_t i = 0; i < length; ++i) append_utf8(text, random_code_point(rng));
  return text;
}

TEST(TokenizerFuzz, RandomBytesAreLosslessAndNeverCrash) {
  std::mt19937 rng(20261127);
  for (int i = 0; i < 3000; ++i) {
    const std::string text = random_bytes(rng);
    expect_lossless(qwen3(), text);
    expect_lossless(tool_calling(), text);
  }
}

TEST(TokenizerFuzz, RandomUnicodeRoundTripsThroughDecode) {
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) {
    const std::string text = random_unicode(rng);
    ASSERT_TRUE(is_valid_utf8(text));
    expect_lossless(qwen3(), text);
    expect_lossless(tool_calling(), text);
    ASSERT_EQ(qwen3().decode(qwen3().encode(text)), nfc_normalize(text));
  }
}

// ASCII with added-token fragments (NFC is the identity, so decode must give the input back).
TEST(TokenizerFuzz, AddedTokenFragmentsRoundTrip) {
  static const std::vector<std::string> kParts = {
      "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>", "<", "|", ">", "im_",
      "<|", "|>", "think", " ", "\n", "a", "<|endoftext|>", "<tool_response>", "</"};
  std::mt19937 rng(99);
  for (int i = 0; i < 2000; ++i) {
    std::string text;
    const size_t parts = rng() % 12;
    for (size_t p = 0; p < parts; ++p) text += kParts[rng() % kParts.size()];
    ASSERT_EQ(qwen3().decode(qwen3().encode(text)), text);
    ASSERT_EQ(tool_calling().decode(tool_calling().encode(text)), text);
  }
}

// Encoding is const and shares one pre-token cache: threads must agree with a single-threaded run.
TEST(TokenizerFuzz, ConcurrentEncodesAgree) {
  std::mt19937 rng(3);
  std::vector<std::string> texts;
  for (int i = 0; i < 400; ++i) texts.push_back(random_unicode(rng) + " the model " + random_bytes(rng));
  std::vector<std::vector<int32_t>> expected;
  for (const auto& text : texts) expected.push_back(qwen3().encode(text));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = 0; i < texts.size(); ++i) {
        const size_t k = (i * 7 + t * 101) % texts.size();
        if (qwen3().encode(texts[k]) != expected[k]) ++mismatches[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace quantlab::text
