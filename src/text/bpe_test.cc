#include "text/bpe.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "core/error.h"
#include "text/byte_level.h"

namespace quantlab::text {
namespace {

// A vocabulary of the 256 alphabet chars (ids 0..255 in byte order) plus `extra` tokens.
std::unique_ptr<Vocabulary> make_vocabulary(const std::vector<std::string>& extra) {
  std::string arena;
  std::vector<Vocabulary::Entry> entries;
  auto add = [&](std::string_view token) {
    entries.push_back({arena.size(), static_cast<uint32_t>(token.size()),
                       static_cast<int32_t>(entries.size())});
    arena.append(token);
  };
  for (int byte = 0; byte < 256; ++byte) {
    add(ByteLevelAlphabet::get().utf8_of(static_cast<uint8_t>(byte)));
  }
  for (const std::string& token : extra) add(token);
  return std::make_unique<Vocabulary>(std::move(arena), entries, "test vocab");
}

// Random merges over the letters a-d, built like a BPE trainer would: each merge joins two existing
// tokens; several pairs may produce the same token.
struct RandomBpe {
  std::vector<std::string> tokens;
  std::vector<std::pair<std::string, std::string>> merges;
  explicit RandomBpe(uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<std::string> known = {"a", "b", "c", "d"};
    std::set<std::pair<std::string, std::string>> seen;
    while (merges.size() < 60) {
      const std::string& left = known[rng() % known.size()];
      const std::string& right = known[rng() % known.size()];
      if (left.size() + right.size() > 8 || !seen.insert({left, right}).second) continue;
      merges.emplace_back(left, right);
      const std::string joined = left + right;
      if (std::find(known.begin(), known.end(), joined) == known.end()) {
        known.push_back(joined);
        tokens.push_back(joined);
      }
    }
  }
  BpeModel model(BpeOptions options = {}) const {
    std::vector<BpeModel::MergePair> pairs(merges.begin(), merges.end());
    return BpeModel(make_vocabulary(tokens), pairs, options, "test merges");
  }
};

// The textbook algorithm on strings: merge the lowest-ranked adjacent pair, leftmost first.
std::vector<std::string> reference_bpe(const std::string& word, const RandomBpe& bpe) {
  std::map<std::pair<std::string, std::string>, size_t> rank;
  for (size_t i = 0; i < bpe.merges.size(); ++i) rank.emplace(bpe.merges[i], i);
  std::vector<std::string> symbols;
  for (char c : word) symbols.emplace_back(1, c);
  while (true) {
    size_t best = symbols.size();
    size_t best_rank = SIZE_MAX;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      const auto it = rank.find({symbols[i], symbols[i + 1]});
      if (it != rank.end() && it->second < best_rank) {
        best_rank = it->second;
        best = i;
      }
    }
    if (best == symbols.size()) return symbols;
    symbols[best] += symbols[best + 1];
    symbols.erase(symbols.begin() + static_cast<ptrdiff_t>(best) + 1);
  }
}

TEST(Bpe, MatchesTheTextbookAlgorithmOnRandomMergesAndWords) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    const RandomBpe bpe(seed);
    const BpeModel model = bpe.model();
    std::mt19937 rng(seed * 100);
    for (int trial = 0; trial < 300; ++trial) {
      std::string word(1 + rng() % 150, 'a');  // crosses the quadratic/heap threshold (64)
      for (char& c : word) c = static_cast<char>('a' + rng() % 4);
      std::vector<int32_t> ids;
      model.encode_uncached(word, ids);
      std::vector<std::string> pieces;
      for (int32_t id : ids) pieces.emplace_back(model.vocabulary().token(id));
      ASSERT_EQ(pieces, reference_bpe(word, bpe)) << "seed " << seed << " word " << word;
      std::vector<int32_t> cached;
      model.encode(word, cached);
      model.encode(word, cached);  // second call comes from the cache
      ASSERT_EQ(cached.size(), ids.size() * 2);
    }
  }
}

TEST(Bpe, QuadraticAndHeapMergeLoopsAgree) {
  const RandomBpe bpe(11);
  const BpeModel model = bpe.model();
  std::mt19937 rng(5);
  for (int trial = 0; trial < 500; ++trial) {
    std::vector<int32_t> symbols(1 + rng() % 40);
    for (int32_t& s : symbols) s = 'a' + static_cast<int32_t>(rng() % 4);  // ids are byte values
    std::vector<int32_t> heap_symbols = symbols;
    model.merge_quadratic(symbols);
    model.merge_with_heap(heap_symbols);
    ASSERT_EQ(symbols, heap_symbols);
  }
}

TEST(Bpe, IgnoreMergesTakesWholeVocabularyWords) {
  const std::vector<BpeModel::MergePair> merges = {{"a", "b"}, {"c", "d"}};
  const std::vector<std::string> extra = {"ab", "cd", "abcd"};
  const BpeModel plain(make_vocabulary(extra), merges, {}, "test");
  std::vector<int32_t> ids;
  plain.encode("abcd", ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{256, 257}));  // ab, cd
  BpeOptions options;
  options.ignore_merges = true;
  const BpeModel ignoring(make_vocabulary(extra), merges, options, "test");
  ids.clear();
  ignoring.encode("abcd", ids);
  EXPECT_EQ(ids, (std::vector<int32_t>{258}));
}

TEST(Bpe, MergeWithUnknownTokenNamesTheMerge) {
  const std::vector<BpeModel::MergePair> merges = {{"a", "b"}, {"x", "y"}};
  try {
    BpeModel model(make_vocabulary({"ab"}), merges, {}, "t.json: model.merges");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("t.json: model.merges: merge 1"), std::string::npos)
        << e.what();
  }
}

TEST(Vocabulary, RejectsRepeatedIdsAndFindsTokens) {
  const auto vocab = make_vocabulary({"hello"});
  EXPECT_EQ(vocab->find("hello"), 256);
  EXPECT_EQ(vocab->find("Ġ"), 32);
  EXPECT_EQ(vocab->find("nope"), std::nullopt);
  EXPECT_EQ(vocab->token(256), "hello");
  EXPECT_EQ(vocab->token(999), "");
  const std::vector<Vocabulary::Entry> twice = {{0, 1, 3}, {1, 1, 3}};
  EXPECT_THROW(Vocabulary("ab", twice, "v"), Error);
}

}  // namespace
}  // namespace quantlab::text
