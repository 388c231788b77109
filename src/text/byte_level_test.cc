#include "text/byte_level.h"

#include <gtest/gtest.h>

#include <set>

namespace quantlab::text {
namespace {

TEST(ByteLevelAlphabet, SpecExamples) {  // model-spec §4.3
  const auto& alphabet = ByteLevelAlphabet::get();
  EXPECT_EQ(alphabet.char_of(' '), 0x120u);   // Ġ
  EXPECT_EQ(alphabet.char_of('\n'), 0x10Au);  // Ċ
  EXPECT_EQ(alphabet.char_of('\r'), 0x10Du);  // č
  EXPECT_EQ(alphabet.char_of('\t'), 0x109u);  // ĉ
  EXPECT_EQ(alphabet.char_of(0), 0x100u);     // Ā
  EXPECT_EQ(alphabet.char_of('!'), static_cast<char32_t>('!'));
  EXPECT_EQ(alphabet.char_of(0xAD), 0x143u);  // the 68th and last shifted byte
  EXPECT_EQ(alphabet.char_of(0xE9), 0xE9u);
  EXPECT_EQ(alphabet.utf8_of(' '), "\xC4\xA0");
}

TEST(ByteLevelAlphabet, IsABijectionOnBytes) {
  const auto& alphabet = ByteLevelAlphabet::get();
  std::set<char32_t> chars;
  for (int byte = 0; byte < 256; ++byte) {
    const char32_t cp = alphabet.char_of(static_cast<uint8_t>(byte));
    chars.insert(cp);
    EXPECT_EQ(alphabet.byte_of(cp), byte);
  }
  EXPECT_EQ(chars.size(), 256u);
  EXPECT_EQ(alphabet.byte_of(0x20), -1);   // a raw space is not in the alphabet
  EXPECT_EQ(alphabet.byte_of(0x4E2D), -1);
}

TEST(ByteLevelAlphabet, EncodeDecodeRoundTripsEveryByte) {
  const auto& alphabet = ByteLevelAlphabet::get();
  std::string all;
  for (int byte = 0; byte < 256; ++byte) all.push_back(static_cast<char>(byte));
  std::string encoded;
  alphabet.append_encoded(encoded, all);
  EXPECT_EQ(alphabet.decode(encoded), all);
  std::string hello;
  alphabet.append_encoded(hello, "Hi there\n");
  EXPECT_EQ(hello, "HiĠthereĊ");
}

TEST(ByteLevelAlphabet, DecodeKeepsCharsOutsideTheAlphabet) {
  // The Hugging Face ByteLevel decoder keeps unknown chars as their UTF-8.
  EXPECT_EQ(ByteLevelAlphabet::get().decode("a 中Ġb"), "a 中 b");
}

}  // namespace
}  // namespace quantlab::text
