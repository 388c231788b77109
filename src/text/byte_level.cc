#include "text/byte_level.h"

#include "text/utf8.h"

namespace quantlab::text {

namespace {
bool maps_to_itself(int byte) {
  return (byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || (byte >= 174 && byte <= 255);
}
}  // namespace

ByteLevelAlphabet::ByteLevelAlphabet() {
  byte_of_char_.fill(-1);
  char32_t next_shifted = 0x100;
  for (int byte = 0; byte < 256; ++byte) {
    const char32_t cp = maps_to_itself(byte) ? static_cast<char32_t>(byte) : next_shifted++;
    char_of_byte_[byte] = cp;
    byte_of_char_[cp] = static_cast<int16_t>(byte);
    std::string utf8;
    append_utf8(utf8, cp);
    utf8_length_[byte] = static_cast<uint8_t>(utf8.size());
    for (size_t i = 0; i < utf8.size(); ++i) utf8_of_byte_[byte][i] = utf8[i];
  }
}

const ByteLevelAlphabet& ByteLevelAlphabet::get() {
  static const ByteLevelAlphabet alphabet;
  return alphabet;
}

void ByteLevelAlphabet::append_encoded(std::string& out, std::string_view bytes) const {
  for (char c : bytes) out.append(utf8_of(static_cast<uint8_t>(c)));
}

std::string ByteLevelAlphabet::decode(std::string_view text) const {
  std::string bytes;
  bytes.reserve(text.size());
  append_decoded(bytes, text);
  return bytes;
}

void ByteLevelAlphabet::append_decoded(std::string& bytes, std::string_view text) const {
  size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<uint8_t>(text[pos]) < 0x80) {  // ASCII: in the alphabet or not, it is its byte
      bytes.push_back(text[pos++]);
      continue;
    }
    const size_t length = valid_sequence_length(text.substr(pos));
    if (length == 0) {  // not UTF-8: cannot be an alphabet char, keep the byte
      bytes.push_back(text[pos++]);
      continue;
    }
    const int byte = byte_of(decode_valid_sequence(text.substr(pos)));
    if (byte >= 0) {
      bytes.push_back(static_cast<char>(byte));
    } else {
      bytes.append(text.substr(pos, length));
    }
    pos += length;
  }
}

}  // namespace quantlab::text
