#include "text/utf8.h"

#include <gtest/gtest.h>

namespace quantlab::text {
namespace {

TEST(Utf8, ValidSequencesAndTheirLengths) {
  EXPECT_EQ(valid_sequence_length("a"), 1u);
  EXPECT_EQ(valid_sequence_length("\xC3\xA9"), 2u);          // é
  EXPECT_EQ(valid_sequence_length("\xE4\xBD\xA0"), 3u);      // 你
  EXPECT_EQ(valid_sequence_length("\xF0\x9F\x8C\x8D"), 4u);  // 🌍
  EXPECT_EQ(decode_valid_sequence("\xF0\x9F\x8C\x8D"), 0x1F30Du);
  EXPECT_EQ(decode_valid_sequence("\xC3\xA9"), 0xE9u);
}

TEST(Utf8, RejectsOverlongsSurrogatesAndOutOfRange) {
  EXPECT_EQ(valid_sequence_length("\xC0\xAF"), 0u);          // overlong '/'
  EXPECT_EQ(valid_sequence_length("\xE0\x80\xAF"), 0u);      // overlong
  EXPECT_EQ(valid_sequence_length("\xED\xA0\x80"), 0u);      // surrogate U+D800
  EXPECT_EQ(valid_sequence_length("\xF4\x90\x80\x80"), 0u);  // U+110000
  EXPECT_EQ(valid_sequence_length("\x80"), 0u);
  EXPECT_EQ(valid_sequence_length("\xE4\xBD"), 0u);          // truncated
  EXPECT_FALSE(is_valid_utf8("ab\xFF"));
  EXPECT_TRUE(is_valid_utf8("ab\xEF\xBF\xBF"));  // U+FFFF is a valid (non)character
}

// The example of Unicode §3.9 (Table 3-8, "U+FFFD for maximal subparts"), which Rust's
// from_utf8_lossy follows: a F1 80 80 E1 80 C2 b 80 c 80 BF d.
TEST(Utf8, LossyDecodingReplacesEachMaximalSubpart) {
  const std::string input = "a\xF1\x80\x80\xE1\x80\xC2" "b\x80" "c\x80\xBF" "d";
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(utf8_lossy(input), "a" + r + r + r + "b" + r + "c" + r + r + "d");
  EXPECT_EQ(utf8_lossy("caf\xC3\xA9"), "caf\xC3\xA9");
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), r + r + r);  // surrogate bytes: 3 subparts of length 1
}

TEST(Utf8, IncompleteTailIsWhatAStreamMustHoldBack) {
  EXPECT_EQ(incomplete_tail_length("ab"), 0u);
  EXPECT_EQ(incomplete_tail_length("a\xF0\x9F"), 2u);
  EXPECT_EQ(incomplete_tail_length("a\xF0\x9F\x8C"), 3u);
  EXPECT_EQ(incomplete_tail_length("a\xF0\x9F\x8C\x8D"), 0u);
  EXPECT_EQ(incomplete_tail_length("a\xE4"), 1u);
  EXPECT_EQ(incomplete_tail_length("a\xFF"), 0u);      // never valid: nothing to wait for
  EXPECT_EQ(incomplete_tail_length("a\xE0\x80"), 0u);  // overlong start: never valid
  EXPECT_EQ(incomplete_tail_length("\x80\x80"), 0u);
}

TEST(Utf8, NfcComposesAndKeepsInvalidBytes) {
  EXPECT_EQ(nfc_normalize("cafe\xCC\x81"), "caf\xC3\xA9");
  EXPECT_EQ(nfc_normalize("A\xCC\x8Angstro\xCC\x88m"), "\xC3\x85ngstr\xC3\xB6m");
  EXPECT_EQ(nfc_normalize("plain ascii"), "plain ascii");
  EXPECT_EQ(nfc_normalize("e\xCC\x81\xFF" "e\xCC\x81"), "\xC3\xA9\xFF\xC3\xA9");
  EXPECT_EQ(nfc_normalize(std::string("a\0b", 3)), std::string("a\0b", 3));
}

}  // namespace
}  // namespace quantlab::text
