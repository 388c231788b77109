// Reads a tokenizer.json in one SAX pass. The two huge parts (model.vocab: 151k entries, model.merges:
// 151k entries for Qwen3) stream straight into flat arenas; everything else becomes a small
// nlohmann::json tree. Building a full DOM instead would take most of the 150 ms load budget.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "text/bpe.h"

namespace quantlab::text {

struct TokenizerJson {
  nlohmann::json config;  // the whole file except model.vocab and model.merges
  bool has_vocab = false;
  bool has_merges = false;
  std::string vocab_arena;
  std::vector<Vocabulary::Entry> vocab;
  std::string merge_arena;
  struct Merge {
    size_t left_offset;
    uint32_t left_length;
    size_t right_offset;
    uint32_t right_length;
  };
  std::vector<Merge> merges;

  // Views into merge_arena, in rank order; valid while this object lives and is not modified.
  std::vector<BpeModel::MergePair> merge_pairs() const;
};

// Throws Error(kInvalidInput) naming `source_name` (the file) and the byte offset on malformed JSON,
// a non-integer vocab id, or a merge that is not "a b" / ["a", "b"].
TokenizerJson parse_tokenizer_json(std::string_view json, const std::string& source_name);

}  // namespace quantlab::text
