// Internal: everything a loaded Tokenizer holds. Immutable once built (the BPE cache is guarded).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "text/bpe.h"
#include "text/pretokenize.h"
#include "text/tokenizer_added_tokens.h"
#include "text/tokenizer_json.h"

namespace quantlab::text {

struct TokenizerData {
  std::string source;  // file name for messages
  bool nfc = false;    // normalizer: NFC or nothing
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<BpeModel> bpe;

  std::vector<AddedToken> added;                // as listed in the file
  AddedTokenMatcher raw_added;                  // tokens matched before normalization
  AddedTokenMatcher normalized_added;           // tokens with normalized=true, matched after it
  std::unordered_map<std::string, int32_t> added_by_content;
  std::vector<int32_t> added_index_by_id;       // index into `added`, -1 if id is no added token

  // Decoded bytes of every id below vocab_size, in one arena: (offset, length) by id.
  std::string bytes_arena;
  std::vector<std::pair<size_t, uint32_t>> bytes_by_id;
  size_t vocab_size = 0;

  const AddedToken* added_token(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= added_index_by_id.size()) return nullptr;
    const int32_t index = added_index_by_id[id];
    return index < 0 ? nullptr : &added[index];
  }
};

// Interprets a parsed tokenizer.json; throws Error(kUnsupported) naming unsupported types and
// Error(kInvalidInput) naming `source` for inconsistent content.
std::shared_ptr<const TokenizerData> build_tokenizer_data(TokenizerJson parsed,
                                                          const std::string& source);

}  // namespace quantlab::text
