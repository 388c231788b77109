// A byte-level BPE tokenizer loaded from a Hugging Face `tokenizer.json` (Qwen2/Qwen3, Llama 3, GPT-2
// style), producing exactly the ids of Hugging Face `tokenizers` with add_special_tokens=False.
//
// Supported: normalizer null / NFC / Sequence of NFC; pre-tokenizer Split(regex or string, "Isolated",
// invert false) steps followed by one ByteLevel step, or a lone ByteLevel (GPT-2 regex); model BPE
// (merges as ["a","b"] or "a b"); added tokens (special or not, lstrip/rstrip/single_word/normalized);
// decoder ByteLevel. Anything else is refused with Error(kUnsupported) naming the type.
//
// Thread-safety: all methods are const and may be called from many threads at once (the internal
// pre-token cache is guarded). Copies share the loaded data.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace quantlab::text {

struct TokenizerData;

class Tokenizer {
 public:
  // `path` is a tokenizer.json file or a model directory containing one. Throws Error: kIo when it
  // cannot be read, kInvalidInput (naming the file) when it is malformed, kUnsupported for types
  // outside the list above.
  static Tokenizer from_file(const std::string& path);
  // The same from JSON text; `source_name` names it in error messages.
  static Tokenizer from_json(std::string_view json, const std::string& source_name);

  // Ids of text, without BOS/EOS. Bytes that are not valid UTF-8 go through byte-level BPE as bytes.
  std::vector<int32_t> encode(std::string_view text) const;
  // Appends to ids instead of returning a new vector.
  void encode_into(std::string_view text, std::vector<int32_t>& ids) const;

  // Text of ids (ByteLevel decoding, invalid UTF-8 replaced by U+FFFD). Ids without a token (padding
  // rows, negative) contribute nothing. skip_special_tokens drops added tokens marked special.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // Id of a token string as it is stored: a vocab entry ("Ġworld") or an added token ("<think>").
  std::optional<int32_t> token_id(std::string_view token) const;
  // The stored token string of id; "" for ids with no token.
  std::string_view token_string(int32_t id) const;
  // The raw bytes id stands for when decoded (may be an incomplete UTF-8 sequence); "" for none.
  std::string_view token_bytes(int32_t id) const;
  bool is_special(int32_t id) const;
  bool is_added(int32_t id) const;
  // One past the largest id with a token (vocab + added tokens): 151669 for Qwen3. Model embedding
  // tables may be larger (151936); ids in between have no string.
  size_t vocab_size() const;

 private:
  explicit Tokenizer(std::shared_ptr<const TokenizerData> data) : data_(std::move(data)) {}
  std::shared_ptr<const TokenizerData> data_;
};

// Turns a stream of generated ids into text pieces, holding back bytes until they form complete
// UTF-8, so that the concatenation of everything returned equals decode() of all ids.
class StreamingDetokenizer {
 public:
  explicit StreamingDetokenizer(const Tokenizer& tokenizer, bool skip_special_tokens = false);
  // Text that became complete with this id (possibly "").
  std::string push(int32_t id);
  // Whatever is still held back (incomplete UTF-8 becomes U+FFFD); call at the end of the stream.
  std::string finish();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::string pending_;  // undecoded bytes: at most an incomplete UTF-8 sequence between calls
};

}  // namespace quantlab::text
