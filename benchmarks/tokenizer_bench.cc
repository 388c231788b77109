// Tokenizer speed: loading the 11 MB Qwen3 tokenizer.json (budget 150 ms) and encoding English text
// (budget >= 5 MB/s on one core). Text is generated deterministically so runs are comparable:
// "English" draws from a list of common words with Zipf-like weights, punctuation and newlines (the
// pre-token cache is warm after the first pass, as in real use); "novel words" makes nearly every
// word unseen, so it measures the BPE merge path itself.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace {

using quantlab::text::Tokenizer;

// Benchmarks get no QUANTLAB_TEST_DATA definition; the data sits at a fixed place from this file.
std::string test_data_dir() {
  const std::string file = __FILE__;  // <root>/benchmarks/tokenizer_bench.cc
  return file.substr(0, file.rfind("/benchmarks/")) + "/tests/data";
}

const std::string kQwen3Json = test_data_dir() + "/tokenizers/qwen3/tokenizer.json";

const Tokenizer& qwen3() {
  static const Tokenizer tokenizer = Tokenizer::from_file(kQwen3Json);
  return tokenizer;
}

// A portable generator (std:: distributions differ between standard libraries).
struct Lcg {
  uint64_t state;
  uint32_t next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 33);
  }
};

std::string english_text(size_t bytes) {
  static const std::vector<std::string> words = {
      "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "as", "was", "with", "be",
      "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have",
      "an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has",
      "there", "been", "if", "more", "when", "will", "would", "who", "so", "no", "model",
      "weather", "quantization", "accuracy", "memory", "Paris", "London", "tokenizer", "people",
      "time", "year", "between", "through", "important", "different", "following", "however",
      "information", "government", "development", "experiment", "results", "question", "answer",
      "language", "machine", "learning", "network", "training", "parameters", "evaluation",
      "It's", "don't", "we'll", "they're", "2024", "3.5", "100%", "e.g.", "(see", "below)"};
  std::string text;
  text.reserve(bytes + 64);
  Lcg rng{42};
  size_t words_in_sentence = 0;
  while (text.size() < bytes) {
    // Squaring a uniform draw favours the front of the list, roughly like word frequencies.
    const double u = (rng.next() % 10000) / 10000.0;
    const std::string& word = words[static_cast<size_t>(u * u * words.size())];
    if (words_in_sentence == 0 && !text.empty()) text += rng.next() % 6 == 0 ? "\n\n" : " ";
    else if (words_in_sentence > 0) text += rng.next() % 12 == 0 ? ", " : " ";
    text += word;
    if (++words_in_sentence > 6 + rng.next() % 14) {
      text += rng.next() % 5 == 0 ? "?" : ".";
      words_in_sentence = 0;
    }
  }
  return text;
}

std::string novel_words_text(size_t bytes) {
  std::string text;
  text.reserve(bytes + 16);
  Lcg rng{7};
  while (text.size() < bytes) {
    text += ' ';
    const size_t length = 3 + rng.next() % 9;
    for (size_t i = 0; i < length; ++i) text += static_cast<char>('a' + rng.next() % 26);
  }
  return text;
}

void BM_LoadQwen3TokenizerJson(benchmark::State& state) {
  for (auto _ : state) {
    Tokenizer tokenizer = Tokenizer::from_file(kQwen3Json);
    benchmark::DoNotOptimize(tokenizer.vocab_size());
  }
}
BENCHMARK(BM_LoadQwen3TokenizerJson)->Unit(benchmark::kMillisecond)->MinTime(2.0);

void encode_benchmark(benchmark::State& state, const std::string& text) {
  const Tokenizer& tokenizer = qwen3();
  size_t tokens = 0;
  for (auto _ : state) {
    const std::vector<int32_t> ids = tokenizer.encode(text);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
}

void BM_EncodeEnglish(benchmark::State& state) {
  static const std::string text = english_text(1 << 20);
  encode_benchmark(state, text);
}
BENCHMARK(BM_EncodeEnglish)->Unit(benchmark::kMillisecond);

void BM_EncodeNovelWords(benchmark::State& state) {
  static const std::string text = novel_words_text(1 << 20);
  encode_benchmark(state, text);
}
BENCHMARK(BM_EncodeNovelWords)->Unit(benchmark::kMillisecond);

void BM_DecodeEnglish(benchmark::State& state) {
  static const std::vector<int32_t> ids = qwen3().encode(english_text(1 << 20));
  size_t bytes = 0;
  for (auto _ : state) {
    const std::string text = qwen3().decode(ids);
    bytes = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}
BENCHMARK(BM_DecodeEnglish)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
