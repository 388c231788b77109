// Interpretation of tokenizer.json sections: what is supported, what is refused (by type name).
#include <algorithm>

#include "core/error.h"
#include "text/byte_level.h"
#include "text/tokenizer_data.h"
#include "text/utf8.h"

namespace quantlab::text {

namespace {

using json = nlohmann::json;

std::string type_of(const json& node) {
  if (!node.is_object()) return node.is_null() ? "null" : node.dump();
  const auto it = node.find("type");
  return it != node.end() && it->is_string() ? it->get<std::string>() : "(no type)";
}

template <typename... Args>
[[noreturn]] void unsupported(fmt::format_string<Args...> format, Args&&... args) {
  fail(ErrorKind::kUnsupported, format, std::forward<Args>(args)...);
}

bool bool_field(const json& node, const char* name, bool fallback, const std::string& where) {
  const auto it = node.find(name);
  if (it == node.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail_input("{}: \"{}\" must be true or false", where, name);
  return it->get<bool>();
}

const json& field(const json& node, const char* name) {
  static const json kNull;
  if (!node.is_object()) return kNull;
  const auto it = node.find(name);
  return it == node.end() ? kNull : *it;
}

// ---- normalizer ----

void add_normalizer(const json& node, const std::string& source, bool& nfc) {
  const std::string type = type_of(node);
  if (node.is_null()) return;
  if (type == "NFC") {
    nfc = true;
  } else if (type == "Sequence") {
    const json& list = field(node, "normalizers");
    if (!list.is_array()) fail_input("{}: normalizer Sequence needs a \"normalizers\" list", source);
    for (const json& child : list) add_normalizer(child, source, nfc);
  } else {
    unsupported("{}: normalizer type \"{}\" is not supported (supported: NFC, a Sequence of NFC, "
                "none)", source, type);
  }
}

// ---- pre-tokenizer ----

void flatten_pre_tokenizers(const json& node, const std::string& source,
                            std::vector<const json*>& steps) {
  if (type_of(node) != "Sequence") {
    steps.push_back(&node);
    return;
  }
  const json& list = field(node, "pretokenizers");
  if (!list.is_array()) fail_input("{}: pre_tokenizer Sequence needs a \"pretokenizers\" list", source);
  for (const json& child : list) flatten_pre_tokenizers(child, source, steps);
}

Regex split_regex(const json& step, const std::string& source) {
  const std::string where = source + ": pre_tokenizer Split";
  const std::string behavior = field(step, "behavior").is_string()
                                   ? field(step, "behavior").get<std::string>() : "";
  if (behavior != "Isolated") {
    unsupported("{}: behavior \"{}\" is not supported (only \"Isolated\")", where, behavior);
  }
  if (bool_field(step, "invert", false, where)) unsupported("{}: invert true is not supported", where);
  const json& pattern = field(step, "pattern");
  if (field(pattern, "Regex").is_string()) {
    return Regex(field(pattern, "Regex").get<std::string>(), false, where);
  }
  if (field(pattern, "String").is_string()) {
    return Regex(field(pattern, "String").get<std::string>(), true, where);
  }
  fail_input("{}: \"pattern\" must be {{\"Regex\": ...}} or {{\"String\": ...}}", where);
}

// Zero or more Split steps, then exactly one ByteLevel, which must come last: ByteLevel rewrites the
// text into its alphabet, and a Split after it would see different characters.
std::unique_ptr<PreTokenizer> build_pre_tokenizer(const json& node, const std::string& source) {
  std::vector<const json*> steps;
  flatten_pre_tokenizers(node, source, steps);
  std::vector<Regex> splits;
  for (size_t i = 0; i < steps.size(); ++i) {
    const json& step = *steps[i];
    const std::string type = type_of(step);
    if (type == "Split") {
      splits.push_back(split_regex(step, source));
    } else if (type == "ByteLevel") {
      if (i + 1 != steps.size()) {
        unsupported("{}: pre_tokenizer steps after ByteLevel are not supported", source);
      }
      const std::string where = source + ": pre_tokenizer ByteLevel";
      ByteLevelOptions options;
      options.add_prefix_space = bool_field(step, "add_prefix_space", true, where);
      options.use_regex = bool_field(step, "use_regex", true, where);
      return std::make_unique<PreTokenizer>(std::move(splits), options);
    } else {
      unsupported("{}: pre_tokenizer type \"{}\" is not supported (supported: Split, ByteLevel, "
                  "Sequence)", source, type);
    }
  }
  unsupported("{}: pre_tokenizer has no ByteLevel step; only byte-level BPE is supported", source);
}

// ---- model ----

bool empty_or_null_string(const json& value) {
  return value.is_null() || (value.is_string() && value.get<std::string>().empty());
}

BpeOptions bpe_options(const json& model, const Vocabulary& vocab, const std::string& source) {
  const std::string where = source + ": model BPE";
  if (field(model, "dropout").is_number() && field(model, "dropout").get<double>() > 0) {
    unsupported("{}: dropout is not supported (encoding would be random)", where);
  }
  if (!empty_or_null_string(field(model, "continuing_subword_prefix")) ||
      !empty_or_null_string(field(model, "end_of_word_suffix"))) {
    unsupported("{}: continuing_subword_prefix / end_of_word_suffix are not supported", where);
  }
  if (bool_field(model, "byte_fallback", false, where)) {
    unsupported("{}: byte_fallback (SentencePiece-style BPE) is not supported", where);
  }
  BpeOptions options;
  options.ignore_merges = bool_field(model, "ignore_merges", false, where);
  options.fuse_unk = bool_field(model, "fuse_unk", false, where);
  if (field(model, "unk_token").is_string()) {
    options.unk_id = vocab.find(field(model, "unk_token").get<std::string>());
  }
  return options;
}

std::unique_ptr<BpeModel> build_bpe(TokenizerJson& parsed, const std::string& source) {
  const json& model = field(parsed.config, "model");
  const std::string type = type_of(model);
  const bool untagged_bpe = type == "(no type)" && parsed.has_merges;
  if (type != "BPE" && !untagged_bpe) {
    unsupported("{}: model type \"{}\" is not supported (only byte-level BPE)", source, type);
  }
  if (!parsed.has_vocab || !parsed.has_merges) {
    fail_input("{}: model BPE needs both \"vocab\" and \"merges\"", source);
  }
  auto vocab = std::make_unique<Vocabulary>(std::move(parsed.vocab_arena), parsed.vocab,
                                            source + ": model.vocab");
  const BpeOptions options = bpe_options(model, *vocab, source);
  return std::make_unique<BpeModel>(std::move(vocab), parsed.merge_pairs(), options,
                                    source + ": model.merges");
}

// ---- added tokens ----

std::vector<AddedToken> read_added_tokens(const json& list, const std::string& source) {
  std::vector<AddedToken> tokens;
  if (list.is_null()) return tokens;
  if (!list.is_array()) fail_input("{}: \"added_tokens\" must be a list", source);
  for (size_t i = 0; i < list.size(); ++i) {
    const json& entry = list[i];
    const std::string where = fmt::format("{}: added_tokens[{}]", source, i);
    if (!field(entry, "id").is_number_integer() || !field(entry, "content").is_string() ||
        field(entry, "id").get<int64_t>() < 0 || field(entry, "id").get<int64_t>() > INT32_MAX) {
      fail_input("{}: needs an integer \"id\" >= 0 and a string \"content\"", where);
    }
    AddedToken token;
    token.id = field(entry, "id").get<int32_t>();
    token.content = field(entry, "content").get<std::string>();
    token.special = bool_field(entry, "special", false, where);
    token.normalized = bool_field(entry, "normalized", !token.special, where);
    token.lstrip = bool_field(entry, "lstrip", false, where);
    token.rstrip = bool_field(entry, "rstrip", false, where);
    token.single_word = bool_field(entry, "single_word", false, where);
    tokens.push_back(std::move(token));
  }
  return tokens;
}

void index_added_tokens(TokenizerData& data) {
  std::vector<AddedToken> raw;
  std::vector<AddedToken> normalized;
  int32_t max_id = -1;
  for (size_t i = 0; i < data.added.size(); ++i) {
    const AddedToken& token = data.added[i];
    max_id = std::max(max_id, token.id);
    data.added_by_content.insert_or_assign(token.content, token.id);
    if (!token.normalized) {
      raw.push_back(token);
    } else {
      normalized.push_back(token);
      if (data.nfc) normalized.back().content = nfc_normalize(token.content);
    }
  }
  data.vocab_size = std::max(data.bpe->vocabulary().id_limit(), static_cast<size_t>(max_id + 1));
  data.added_index_by_id.assign(data.vocab_size, -1);
  for (size_t i = 0; i < data.added.size(); ++i) {
    data.added_index_by_id[data.added[i].id] = static_cast<int32_t>(i);
  }
  data.raw_added = AddedTokenMatcher(std::move(raw));
  data.normalized_added = AddedTokenMatcher(std::move(normalized));
}

// The Hugging Face ByteLevel decoder maps every token string through the alphabet, added tokens
// included (their ASCII content maps to itself).
void precompute_token_bytes(TokenizerData& data) {
  const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::get();
  const Vocabulary& vocab = data.bpe->vocabulary();
  data.bytes_by_id.resize(data.vocab_size);
  data.bytes_arena.reserve(vocab.size() * 8);
  for (size_t id = 0; id < data.vocab_size; ++id) {
    const auto* added = data.added_token(static_cast<int32_t>(id));
    const std::string_view text = added ? std::string_view(added->content)
                                        : vocab.token(static_cast<int32_t>(id));
    const size_t offset = data.bytes_arena.size();
    alphabet.append_decoded(data.bytes_arena, text);
    data.bytes_by_id[id] = {offset, static_cast<uint32_t>(data.bytes_arena.size() - offset)};
  }
}

void check_decoder(const json& node, const std::string& source) {
  const std::string type = type_of(node);
  if (type != "ByteLevel") {
    unsupported("{}: decoder type \"{}\" is not supported (only ByteLevel)", source, type);
  }
}

}  // namespace

std::shared_ptr<const TokenizerData> build_tokenizer_data(TokenizerJson parsed,
                                                          const std::string& source) {
  auto data = std::make_shared<TokenizerData>();
  data->source = source;
  const json& config = parsed.config;
  data->bpe = build_bpe(parsed, source);  // first: an unsupported model is the clearest refusal
  add_normalizer(field(config, "normalizer"), source, data->nfc);
  data->pre_tokenizer = build_pre_tokenizer(field(config, "pre_tokenizer"), source);
  check_decoder(field(config, "decoder"), source);
  data->added = read_added_tokens(field(config, "added_tokens"), source);
  index_added_tokens(*data);
  precompute_token_bytes(*data);
  return data;
}

}  // namespace quantlab::text
