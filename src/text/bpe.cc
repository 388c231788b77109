#include "text/bpe.h"

#include <algorithm>
#include <bit>
#include <functional>
#include <limits>
#include <mutex>
#include <queue>
#include <unordered_map>

#include "core/error.h"
#include "text/byte_level.h"

namespace quantlab::text {

namespace {
constexpr uint32_t kNoRank = std::numeric_limits<uint32_t>::max();
// Pre-tokens longer than this are rare (long runs of spaces or symbols) and are not cached; the heap
// merge takes over from the quadratic one at the same size.
constexpr size_t kLongPieceBytes = 64;
constexpr size_t kCacheCapacity = 1 << 17;
}  // namespace

// ---- Vocabulary ----------------------------------------------------------------------------------

namespace {
uint64_t hash_token(std::string_view token) {
  return std::hash<std::string_view>{}(token) * 0x9E3779B97F4A7C15ull;  // spread into the top bits
}
}  // namespace

Vocabulary::Vocabulary(std::string arena, const std::vector<Entry>& entries,
                       std::string_view context)
    : arena_(std::move(arena)) {
  int32_t max_id = -1;
  for (const Entry& entry : entries) {
    if (entry.id < 0) fail_input("{}: vocab token has negative id {}", context, entry.id);
    max_id = std::max(max_id, entry.id);
  }
  by_id_.assign(static_cast<size_t>(max_id + 1), {0, 0});
  const size_t capacity = std::bit_ceil(std::max<size_t>(16, entries.size() * 2));
  shift_ = 64 - std::countr_zero(capacity);
  slots_.assign(capacity, 0);
  std::vector<bool> seen(by_id_.size(), false);
  for (const Entry& entry : entries) {
    if (seen[entry.id]) fail_input("{}: vocab id {} is used by two tokens", context, entry.id);
    seen[entry.id] = true;
    by_id_[entry.id] = {entry.offset, entry.length};
    insert(std::string_view(arena_).substr(entry.offset, entry.length), entry.id);
  }
}

// A repeated token string keeps the later id, like a JSON object with a repeated key.
void Vocabulary::insert(std::string_view token, int32_t id) {
  const uint64_t hash = hash_token(token);
  const uint64_t tag = hash & 0xFFFFFFFF00000000ull;
  for (size_t slot = slot_of(hash);; slot = (slot + 1) & (slots_.size() - 1)) {
    const uint64_t value = slots_[slot];
    const bool same = value != 0 && (value & 0xFFFFFFFF00000000ull) == tag &&
                      this->token(static_cast<int32_t>((value & 0xFFFFFFFF) - 1)) == token;
    if (value == 0 || same) {
      if (value == 0) ++size_;
      slots_[slot] = tag | (static_cast<uint64_t>(id) + 1);
      return;
    }
  }
}

std::optional<int32_t> Vocabulary::find(std::string_view token) const {
  const uint64_t hash = hash_token(token);
  const uint64_t tag = hash & 0xFFFFFFFF00000000ull;
  for (size_t slot = slot_of(hash);; slot = (slot + 1) & (slots_.size() - 1)) {
    const uint64_t value = slots_[slot];
    if (value == 0) return std::nullopt;
    if ((value & 0xFFFFFFFF00000000ull) != tag) continue;
    const auto id = static_cast<int32_t>((value & 0xFFFFFFFF) - 1);
    if (this->token(id) == token) return id;
  }
}

std::string_view Vocabulary::token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= by_id_.size()) return {};
  const auto [offset, length] = by_id_[id];
  return std::string_view(arena_).substr(offset, length);
}

// ---- Merge table: open addressing keyed by the pair of ids ----------------------------------------

class BpeModel::MergeTable {
 public:
  struct Merge {
    uint32_t rank;
    int32_t merged;
  };

  explicit MergeTable(size_t count) {
    const size_t capacity = std::bit_ceil(std::max<size_t>(16, count * 2));
    shift_ = 64 - std::countr_zero(capacity);
    keys_.assign(capacity, kEmpty);
    values_.resize(capacity);
  }

  // A repeated pair takes the later rank, as the Hugging Face BPE builder's map insertion does.
  void insert(int32_t left, int32_t right, Merge merge) {
    const uint64_t key = pack(left, right);
    size_t slot = slot_of(key);
    while (keys_[slot] != kEmpty && keys_[slot] != key) slot = (slot + 1) & (keys_.size() - 1);
    if (keys_[slot] == kEmpty) ++size_;
    keys_[slot] = key;
    values_[slot] = merge;
  }

  const Merge* find(int32_t left, int32_t right) const {
    const uint64_t key = pack(left, right);
    for (size_t slot = slot_of(key);; slot = (slot + 1) & (keys_.size() - 1)) {
      if (keys_[slot] == key) return &values_[slot];
      if (keys_[slot] == kEmpty) return nullptr;
    }
  }

  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // ids are non-negative, so never a real key
  static uint64_t pack(int32_t left, int32_t right) {
    return (uint64_t{static_cast<uint32_t>(left)} << 32) | static_cast<uint32_t>(right);
  }
  size_t slot_of(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> shift_; }

  std::vector<uint64_t> keys_;
  std::vector<Merge> values_;
  int shift_ = 0;
  size_t size_ = 0;
};

// ---- Pre-token cache ------------------------------------------------------------------------------

class BpeModel::PieceCache {
 public:
  bool append_cached(std::string_view piece, std::vector<int32_t>& ids) const {
    std::lock_guard lock(mutex_);
    const auto it = map_.find(piece);
    if (it == map_.end()) return false;
    ids.insert(ids.end(), it->second.begin(), it->second.end());
    return true;
  }

  void insert(std::string_view piece, const int32_t* ids, size_t count) {
    std::lock_guard lock(mutex_);
    if (map_.size() >= kCacheCapacity) map_.clear();  // bounded memory on endless novel input
    map_.try_emplace(std::string(piece), ids, ids + count);
  }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::vector<int32_t>, Hash, std::equal_to<>> map_;
};

// ---- BpeModel -------------------------------------------------------------------------------------

BpeModel::BpeModel(std::unique_ptr<Vocabulary> vocabulary, const std::vector<MergePair>& merges,
                   BpeOptions options, std::string_view context)
    : vocabulary_(std::move(vocabulary)),
      merges_(std::make_unique<MergeTable>(merges.size())),
      cache_(std::make_unique<PieceCache>()),
      options_(options) {
  const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::get();
  for (int byte = 0; byte < 256; ++byte) {
    byte_ids_[byte] = vocabulary_->find(alphabet.utf8_of(static_cast<uint8_t>(byte))).value_or(-1);
  }
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const auto left_id = vocabulary_->find(left);
    const auto right_id = vocabulary_->find(right);
    joined.assign(left).append(right);
    const auto merged_id = vocabulary_->find(joined);
    if (!left_id || !right_id || !merged_id) {
      fail_input("{}: merge {} (\"{} {}\") uses a token that is not in the vocab: \"{}\"", context,
                 rank, left, right, !left_id ? left : !right_id ? right : std::string_view(joined));
    }
    merges_->insert(*left_id, *right_id, {static_cast<uint32_t>(rank), *merged_id});
  }
}

BpeModel::~BpeModel() = default;

size_t BpeModel::merge_count() const { return merges_->size(); }

void BpeModel::encode(std::string_view piece, std::vector<int32_t>& ids) const {
  if (piece.size() == 1 && byte_ids_[static_cast<uint8_t>(piece[0])] >= 0) {
    ids.push_back(byte_ids_[static_cast<uint8_t>(piece[0])]);
    return;
  }
  const bool cacheable = piece.size() <= kLongPieceBytes;
  if (cacheable && cache_->append_cached(piece, ids)) return;
  const size_t first = ids.size();
  encode_uncached(piece, ids);
  if (cacheable) cache_->insert(piece, ids.data() + first, ids.size() - first);
}

void BpeModel::encode_uncached(std::string_view piece, std::vector<int32_t>& ids) const {
  if (options_.ignore_merges) {
    std::string as_token;
    ByteLevelAlphabet::get().append_encoded(as_token, piece);
    if (const auto id = vocabulary_->find(as_token)) {
      ids.push_back(*id);
      return;
    }
  }
  std::vector<int32_t> symbols;
  initial_symbols(piece, symbols);
  if (symbols.size() <= kLongPieceBytes) {
    merge_quadratic(symbols);
  } else {
    merge_with_heap(symbols);
  }
  ids.insert(ids.end(), symbols.begin(), symbols.end());
}

// One symbol per byte. A byte whose alphabet char is missing from the vocabulary becomes the unk
// token, or is dropped when there is none (what Hugging Face BPE does with unknown chars).
void BpeModel::initial_symbols(std::string_view piece, std::vector<int32_t>& symbols) const {
  symbols.reserve(piece.size());
  bool previous_unknown = false;
  for (char c : piece) {
    const int32_t id = byte_ids_[static_cast<uint8_t>(c)];
    if (id >= 0) {
      symbols.push_back(id);
      previous_unknown = false;
    } else if (options_.unk_id) {
      if (!(options_.fuse_unk && previous_unknown)) symbols.push_back(*options_.unk_id);
      previous_unknown = true;
    }
  }
}

// Repeatedly merges the adjacent pair with the lowest rank, leftmost on ties. ranks[i] is the rank of
// the pair (symbols[i], symbols[i + 1]); only the two neighbours of a merge need a new lookup.
void BpeModel::merge_quadratic(std::vector<int32_t>& symbols) const {
  if (symbols.size() < 2) return;
  std::vector<uint32_t> ranks(symbols.size() - 1);
  std::vector<int32_t> merged(symbols.size() - 1);
  auto look_up = [&](size_t i) {
    const MergeTable::Merge* merge = merges_->find(symbols[i], symbols[i + 1]);
    ranks[i] = merge ? merge->rank : kNoRank;
    merged[i] = merge ? merge->merged : -1;
  };
  for (size_t i = 0; i + 1 < symbols.size(); ++i) look_up(i);
  while (!ranks.empty()) {
    const size_t best = std::min_element(ranks.begin(), ranks.end()) - ranks.begin();
    if (ranks[best] == kNoRank) break;
    symbols[best] = merged[best];
    symbols.erase(symbols.begin() + static_cast<ptrdiff_t>(best) + 1);
    ranks.erase(ranks.begin() + static_cast<ptrdiff_t>(best));
    merged.erase(merged.begin() + static_cast<ptrdiff_t>(best));
    if (best < ranks.size()) look_up(best);
    if (best > 0) look_up(best - 1);
  }
}

// The same merge order with a min-heap of (rank, position) over a linked list of symbols: O(n log n)
// for pre-tokens of any length. Heap entries whose pair has changed since are skipped when popped.
void BpeModel::merge_with_heap(std::vector<int32_t>& symbols) const {
  const auto n = static_cast<int32_t>(symbols.size());
  if (n < 2) return;
  std::vector<int32_t> next(n);
  std::vector<int32_t> prev(n);
  std::vector<bool> alive(n, true);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  using Candidate = std::pair<uint32_t, int32_t>;  // (rank, left position): lowest, then leftmost
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto push_pair = [&](int32_t pos) {
    if (next[pos] < 0) return;
    if (const auto* merge = merges_->find(symbols[pos], symbols[next[pos]])) {
      heap.emplace(merge->rank, pos);
    }
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);
  while (!heap.empty()) {
    const auto [rank, pos] = heap.top();
    heap.pop();
    if (!alive[pos] || next[pos] < 0) continue;
    const int32_t right = next[pos];
    const auto* merge = merges_->find(symbols[pos], symbols[right]);
    if (merge == nullptr || merge->rank != rank) continue;  // stale: ranks are unique per pair
    symbols[pos] = merge->merged;
    alive[right] = false;
    next[pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = pos;
    if (prev[pos] >= 0) push_pair(prev[pos]);
    push_pair(pos);
  }
  size_t out = 0;
  for (int32_t pos = 0; pos >= 0; pos = next[pos]) symbols[out++] = symbols[pos];
  symbols.resize(out);
}

}  // namespace quantlab::text
