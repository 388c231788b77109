// tokenizer.json variants built from the tool-calling tokenizer: accepted alternatives give the same
// ids, unsupported types are refused by name, malformed files are named.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "core/error.h"
#include "text/tokenizer.h"

namespace quantlab::text {
namespace {

using json = nlohmann::json;
const std::string kToolJson = std::string(QUANTLAB_TEST_DATA) + "/tool-calling/tokenizer.json";

json base_config() {
  std::ifstream in(kToolJson);
  return json::parse(in);
}

const Tokenizer& base() {
  static const Tokenizer tokenizer = Tokenizer::from_file(kToolJson);
  return tokenizer;
}

Tokenizer load(const json& config) { return Tokenizer::from_json(config.dump(), "variant.json"); }

void expect_refused(const json& config, ErrorKind kind, const std::string& needle) {
  try {
    load(config);
    FAIL() << "expected a refusal mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("variant.json"), std::string::npos) << e.what();
  }
}

const std::vector<std::string> kSamples = {
    "Hello world", "What's the weather in Paris?", "cafe\xCC\x81 <think>\n\n</think>\n\n",
    "  12345  x\r\n", "<|im_start|>user\n你好🌍<|im_end|>"};

TEST(TokenizerLoad, UnsupportedModelTypesAreRefusedByName) {
  for (const char* type : {"WordPiece", "Unigram", "WordLevel"}) {
    json config = base_config();
    config["model"]["type"] = type;
    expect_refused(config, ErrorKind::kUnsupported, type);
  }
}

TEST(TokenizerLoad, UnsupportedComponentsAreRefusedByName) {
  json normalizer = base_config();
  normalizer["normalizer"] = {{"type", "Sequence"},
                              {"normalizers", {{{"type", "NFC"}}, {{"type", "Lowercase"}}}}};
  expect_refused(normalizer, ErrorKind::kUnsupported, "Lowercase");

  json metaspace = base_config();
  metaspace["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}};
  expect_refused(metaspace, ErrorKind::kUnsupported, "Metaspace");

  json removed = base_config();
  removed["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed";
  expect_refused(removed, ErrorKind::kUnsupported, "Removed");

  json no_byte_level = base_config();
  no_byte_level["pre_tokenizer"]["pretokenizers"].erase(1);
  expect_refused(no_byte_level, ErrorKind::kUnsupported, "ByteLevel");

  json decoder = base_config();
  decoder["decoder"] = {{"type", "WordPiece"}};
  expect_refused(decoder, ErrorKind::kUnsupported, "WordPiece");

  json fallback = base_config();
  fallback["model"]["byte_fallback"] = true;
  expect_refused(fallback, ErrorKind::kUnsupported, "byte_fallback");
}

TEST(TokenizerLoad, MalformedContentIsAnInputError) {
  json bad_vocab = base_config();
  bad_vocab["model"]["vocab"]["x"] = "not an id";
  expect_refused(bad_vocab, ErrorKind::kInvalidInput, "model.vocab");

  json bad_merge = base_config();
  bad_merge["model"]["merges"][0] = json::array({"a", "b", "c"});
  expect_refused(bad_merge, ErrorKind::kInvalidInput, "model.merges[0]");

  json unknown_merge = base_config();
  unknown_merge["model"]["merges"][3] = json::array({"\xE4\xB8\xAD", "x"});
  expect_refused(unknown_merge, ErrorKind::kInvalidInput, "merge 3");
}

TEST(TokenizerLoad, MalformedJsonFileIsNamed) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("ql_tokenizer_" + std::to_string(::getpid()) + "_truncated.json");
  std::ifstream in(kToolJson);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(path) << text.substr(0, text.size() / 2);
  try {
    Tokenizer::from_file(path.string());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(TokenizerLoad, MergesAsStringsEncodeLikeMergesAsPairs) {
  json config = base_config();
  for (json& merge : config["model"]["merges"]) {
    merge = merge[0].get<std::string>() + " " + merge[1].get<std::string>();
  }
  const Tokenizer strings = load(config);
  for (const std::string& text : kSamples) EXPECT_EQ(strings.encode(text), base().encode(text));
}

TEST(TokenizerLoad, NormalizerAlternatives) {
  json sequence = base_config();
  sequence["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}}}};
  EXPECT_EQ(load(sequence).encode("cafe\xCC\x81"), base().encode("caf\xC3\xA9"));

  json none = base_config();
  none["normalizer"] = nullptr;
  const Tokenizer raw = load(none);
  EXPECT_EQ(raw.encode("Hello world"), base().encode("Hello world"));
  // Without NFC the decomposed accent stays decomposed and round-trips byte for byte.
  EXPECT_NE(raw.encode("cafe\xCC\x81"), base().encode("cafe\xCC\x81"));
  EXPECT_EQ(raw.decode(raw.encode("cafe\xCC\x81")), "cafe\xCC\x81");
}

TEST(TokenizerLoad, LoneByteLevelPreTokenizerUsesTheGpt2Pattern) {
  json config = base_config();
  config["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false},
                             {"trim_offsets", true}, {"use_regex", true}};
  const Tokenizer gpt2 = load(config);
  // The split itself is checked in pretokenize_test; here the lone ByteLevel step must load and stay
  // lossless.
  EXPECT_EQ(gpt2.decode(gpt2.encode("abc 12345")), "abc 12345");
  for (const std::string& text : kSamples) {
    EXPECT_EQ(gpt2.decode(gpt2.encode(text)), base().decode(base().encode(text)));
  }
}

TEST(TokenizerLoad, AddedTokenOptionsFollowHuggingFace) {
  json config = base_config();
  auto add = [&](int id, const char* content, bool lstrip, bool rstrip, bool single_word,
                 bool normalized) {
    config["added_tokens"].push_back({{"id", id}, {"content", content}, {"lstrip", lstrip},
                                      {"rstrip", rstrip}, {"single_word", single_word},
                                      {"normalized", normalized}, {"special", false}});
  };
  add(1033, "<mask>", true, true, false, false);
  add(1034, "ony", false, false, true, false);
  add(1035, "\xC3\xA9!", false, false, false, true);  // "é!", matched after NFC
  const Tokenizer tokenizer = load(config);
  auto concat = [](std::vector<int32_t> a, const std::vector<int32_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  // lstrip/rstrip: the spaces around <mask> belong to it.
  EXPECT_EQ(tokenizer.encode("Hi <mask>  there"),
            concat(concat(base().encode("Hi"), {1033}), base().encode("there")));
  // single_word: "ony" inside "Anthony" stays text, the free-standing one is the token.
  EXPECT_EQ(tokenizer.encode("Anthony ony"), concat(base().encode("Anthony "), {1034}));
  // normalized: the decomposed "e\u0301!" becomes "é!" first, then matches.
  EXPECT_EQ(tokenizer.encode("xe\xCC\x81!"), concat(base().encode("x"), {1035}));
  EXPECT_EQ(tokenizer.vocab_size(), 1036u);
  EXPECT_EQ(tokenizer.token_string(1035), "\xC3\xA9!");
}

}  // namespace
}  // namespace quantlab::text
