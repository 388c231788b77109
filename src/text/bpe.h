// Byte-level BPE model (Hugging Face `"model": {"type": "BPE"}`), working directly on raw bytes: the
// initial symbols are the ids of the 256 byte-level alphabet chars, and merges are looked up by pair
// of ids. Immutable after construction except for an internal, mutex-guarded pre-token cache, so one
// model can encode from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace quantlab::text {

// Token strings (byte-level form, e.g. "Ġworld") by id and ids by string. All strings live in one
// arena: the Qwen3 vocabulary has 151,643 of them and loading must stay fast.
class Vocabulary {
 public:
  struct Entry {
    size_t offset;  // into the arena
    uint32_t length;
    int32_t id;
  };
  // Throws Error(kInvalidInput) naming `context` on a negative or repeated id.
  Vocabulary(std::string arena, const std::vector<Entry>& entries, std::string_view context);
  Vocabulary(const Vocabulary&) = delete;
  Vocabulary& operator=(const Vocabulary&) = delete;

  std::optional<int32_t> find(std::string_view token) const;
  // "" for ids that have no token (holes, out of range).
  std::string_view token(int32_t id) const;
  size_t size() const { return size_; }
  // One past the largest id.
  size_t id_limit() const { return by_id_.size(); }

 private:
  std::string arena_;
  void insert(std::string_view token, int32_t id);
  size_t slot_of(uint64_t hash) const { return hash >> shift_; }

  std::vector<std::pair<size_t, uint32_t>> by_id_;  // (offset, length); length 0 = no token
  // Open addressing, linear probing: (upper 32 hash bits << 32 | id + 1), 0 = empty. Flat slots keep
  // the 450k lookups of loading Qwen3 in cache far better than a node-based map.
  std::vector<uint64_t> slots_;
  int shift_ = 0;
  size_t size_ = 0;
};

struct BpeOptions {
  bool ignore_merges = false;         // a pre-token that is itself in the vocabulary is one token
  std::optional<int32_t> unk_id;      // for bytes whose alphabet char is missing from the vocabulary
  bool fuse_unk = false;              // consecutive unknowns become one unk token
};

class BpeModel {
 public:
  using MergePair = std::pair<std::string_view, std::string_view>;
  // Merges are given in rank order (index 0 merges first). Throws Error(kInvalidInput) naming
  // `context` and the merge index when a part or the merged token is not in the vocabulary.
  BpeModel(std::unique_ptr<Vocabulary> vocabulary, const std::vector<MergePair>& merges,
           BpeOptions options, std::string_view context);
  ~BpeModel();

  // Appends the ids of one pre-token (raw bytes, not byte-level chars).
  void encode(std::string_view piece, std::vector<int32_t>& ids) const;
  // Same without the cache; exposed for tests and benchmarks.
  void encode_uncached(std::string_view piece, std::vector<int32_t>& ids) const;

  const Vocabulary& vocabulary() const { return *vocabulary_; }
  size_t merge_count() const;

  // The two merge loops, public so tests can check they agree: quadratic (fast for short words) and
  // heap-based (for long pre-tokens such as runs of spaces, which must not hang).
  void merge_quadratic(std::vector<int32_t>& symbols) const;
  void merge_with_heap(std::vector<int32_t>& symbols) const;

 private:
  class MergeTable;
  class PieceCache;
  void initial_symbols(std::string_view piece, std::vector<int32_t>& symbols) const;

  std::unique_ptr<Vocabulary> vocabulary_;
  std::unique_ptr<MergeTable> merges_;
  std::unique_ptr<PieceCache> cache_;
  BpeOptions options_;
  int32_t byte_ids_[256];  // id of each byte's alphabet char, -1 when missing
};

}  // namespace quantlab::text
