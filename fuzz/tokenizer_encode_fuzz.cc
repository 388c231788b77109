// Any text through the bundled Qwen3-style tokenizer, and any ids back: ids in range, the ids' bytes
// equal the NFC-normalized text (byte-level BPE loses nothing), decode equals the streaming
// detokenizer's concatenation. Input: text, 0x1E, ids as little-endian int32 (any values).
#include <cstring>

#include "fuzz_support.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace quantlab;
  static const text::Tokenizer tokenizer = text::Tokenizer::from_file(fuzz::data_path("tool-calling/tokenizer.json"));
  const auto parts = fuzz::split_parts(data, size, 2);
  const std::vector<int32_t> ids = tokenizer.encode(parts[0]);
  std::string bytes;
  for (int32_t id : ids) {
    fuzz::require(id >= 0 && static_cast<size_t>(id) < tokenizer.vocab_size(), "id in range");
    bytes.append(tokenizer.token_bytes(id));
  }
  fuzz::require(bytes == text::nfc_normalize(parts[0]), "ids spell the normalized text");

  std::vector<int32_t> raw(parts[1].size() / 4);
  if (!raw.empty()) std::memcpy(raw.data(), parts[1].data(), raw.size() * 4);
  for (bool skip_special : {false, true}) {
    text::StreamingDetokenizer stream(tokenizer, skip_special);
    std::string streamed;
    for (int32_t id : raw) streamed += stream.push(id);
    streamed += stream.finish();
    fuzz::require(streamed == tokenizer.decode(raw, skip_special), "streaming equals decode");
  }
  return 0;
}
