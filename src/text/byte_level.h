// The GPT-2 byte-level alphabet used by byte-level BPE (GPT-2, Llama 3, Qwen2/3): every byte maps to
// one printable code point so that a vocabulary of strings can hold arbitrary bytes. Bytes 33-126,
// 161-172 and 174-255 map to themselves; the other 68 bytes map, in increasing order, to U+0100...
// (space -> 'Ġ' U+0120, '\n' -> 'Ċ' U+010A). See docs model-spec §4.3.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace quantlab::text {

class ByteLevelAlphabet {
 public:
  // The one shared instance; the tables are pure functions of the byte value.
  static const ByteLevelAlphabet& get();

  char32_t char_of(uint8_t byte) const { return char_of_byte_[byte]; }
  // UTF-8 of char_of(byte) (1 or 2 bytes).
  std::string_view utf8_of(uint8_t byte) const {
    return {utf8_of_byte_[byte].data(), utf8_length_[byte]};
  }
  // The byte a code point stands for, or -1 when the code point is not in the alphabet.
  int byte_of(char32_t code_point) const {
    return code_point < byte_of_char_.size() ? byte_of_char_[code_point] : -1;
  }

  // Raw bytes -> byte-level string ("Hi there" -> "HiĠthere"), appended to out.
  void append_encoded(std::string& out, std::string_view bytes) const;
  // Byte-level string -> raw bytes, as the Hugging Face ByteLevel decoder does: each alphabet char
  // becomes its byte; any other char (or an ill-formed UTF-8 byte) is kept as it is.
  std::string decode(std::string_view byte_level_text) const;
  void append_decoded(std::string& out, std::string_view byte_level_text) const;

 private:
  ByteLevelAlphabet();
  std::array<char32_t, 256> char_of_byte_{};
  std::array<std::array<char, 2>, 256> utf8_of_byte_{};
  std::array<uint8_t, 256> utf8_length_{};
  std::array<int16_t, 0x144> byte_of_char_{};  // the alphabet lies within U+0000..U+0143
};

}  // namespace quantlab::text
