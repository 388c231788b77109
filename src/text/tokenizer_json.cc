#include "text/tokenizer_json.h"

#include "core/error.h"

namespace quantlab::text {

namespace {

using json = nlohmann::json;

// What the innermost open container is.
enum class Frame { kDom, kVocab, kMerges, kMergePair };

class TokenizerJsonSax : public nlohmann::json_sax<json> {
 public:
  explicit TokenizerJsonSax(TokenizerJson& out) : out_(out) {}
  const std::string& error() const { return error_; }

  bool null() override { return dom_value(nullptr); }
  bool boolean(bool value) override { return dom_value(value); }
  bool number_integer(number_integer_t value) override {
    if (top() == Frame::kVocab) return vocab_id(value);
    return dom_value(value);
  }
  bool number_unsigned(number_unsigned_t value) override {
    if (top() == Frame::kVocab) return vocab_id(static_cast<int64_t>(value));
    return dom_value(value);
  }
  bool number_float(number_float_t value, const string_t&) override {
    return dom_value(value);
  }
  bool string(string_t& value) override;
  bool binary(binary_t&) override { return reject("binary values are not JSON"); }
  bool key(string_t& key) override {
    key_ = std::move(key);
    return true;
  }
  bool start_object(std::size_t) override;
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override;
  bool end_array() override;
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    error_ = fmt::format("malformed JSON near byte {}: {}", position, ex.what());
    return false;
  }

 private:
  Frame top() const { return frames_.empty() ? Frame::kDom : frames_.back(); }
  bool in_model_object() const {
    return frames_.size() == 2 && frames_[1] == Frame::kDom && model_object_open_;
  }
  bool reject(std::string message) {
    error_ = std::move(message);
    return false;
  }

  // The slot the next DOM value goes into: the root, the pending key of an object, or a new
  // array element. Containers on the stack never move while open (only their last child grows).
  json* dom_slot() {
    if (dom_.empty()) return &out_.config;
    json* parent = dom_.back();
    if (parent->is_object()) return &(*parent)[key_];
    parent->push_back(nullptr);
    return &parent->back();
  }
  template <typename T>
  bool dom_value(T&& value) {
    if (top() != Frame::kDom) return reject(special_value_error());
    *dom_slot() = std::forward<T>(value);
    return true;
  }
  std::string special_value_error() const {
    return top() == Frame::kVocab ? "model.vocab: every value must be an integer id"
                                  : "model.merges: every merge must be \"a b\" or [\"a\", \"b\"]";
  }

  bool vocab_id(int64_t id) {
    if (id < 0 || id > INT32_MAX) return reject(fmt::format("model.vocab: bad id {}", id));
    out_.vocab.push_back({out_.vocab_arena.size(), static_cast<uint32_t>(key_.size()),
                          static_cast<int32_t>(id)});
    out_.vocab_arena.append(key_);
    return true;
  }
  bool merge_string(const std::string& text);
  bool close();

  TokenizerJson& out_;
  std::vector<Frame> frames_;
  std::vector<json*> dom_;  // open DOM containers (frames of kind kDom)
  std::string key_;
  bool model_object_open_ = false;
  std::vector<std::string> pair_parts_;
  std::string error_;
};

bool TokenizerJsonSax::string(string_t& value) {
  switch (top()) {
    case Frame::kDom: return dom_value(std::move(value));
    case Frame::kVocab: return reject(special_value_error());
    case Frame::kMerges: return merge_string(value);
    case Frame::kMergePair:
      pair_parts_.push_back(std::move(value));
      return true;
  }
  return false;
}

bool TokenizerJsonSax::start_object(std::size_t) {
  if (top() == Frame::kMerges || top() == Frame::kMergePair) return reject(special_value_error());
  if (top() == Frame::kVocab) return reject(special_value_error());
  if (in_model_object() && key_ == "vocab") {
    out_.has_vocab = true;
    frames_.push_back(Frame::kVocab);
    return true;
  }
  const bool opens_model = frames_.size() == 1 && key_ == "model";
  json* slot = dom_slot();
  *slot = json::object();
  dom_.push_back(slot);
  frames_.push_back(Frame::kDom);
  if (opens_model) model_object_open_ = true;
  return true;
}

bool TokenizerJsonSax::start_array(std::size_t) {
  switch (top()) {
    case Frame::kVocab:
    case Frame::kMergePair: return reject(special_value_error());
    case Frame::kMerges:
      pair_parts_.clear();
      frames_.push_back(Frame::kMergePair);
      return true;
    case Frame::kDom: break;
  }
  if (in_model_object() && key_ == "merges") {
    out_.has_merges = true;
    frames_.push_back(Frame::kMerges);
    return true;
  }
  json* slot = dom_slot();
  *slot = json::array();
  dom_.push_back(slot);
  frames_.push_back(Frame::kDom);
  return true;
}

bool TokenizerJsonSax::end_array() {
  if (top() == Frame::kMergePair) {
    if (pair_parts_.size() != 2) {
      return reject(fmt::format("model.merges[{}]: expected 2 tokens, got {}", out_.merges.size(),
                                pair_parts_.size()));
    }
    TokenizerJson::Merge merge{};
    merge.left_offset = out_.merge_arena.size();
    merge.left_length = static_cast<uint32_t>(pair_parts_[0].size());
    out_.merge_arena.append(pair_parts_[0]);
    merge.right_offset = out_.merge_arena.size();
    merge.right_length = static_cast<uint32_t>(pair_parts_[1].size());
    out_.merge_arena.append(pair_parts_[1]);
    out_.merges.push_back(merge);
  }
  return close();
}

// The older serialisation: one string "left right" per merge, split on its single space.
bool TokenizerJsonSax::merge_string(const std::string& text) {
  const size_t space = text.find(' ');
  if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
    return reject(fmt::format("model.merges[{}]: \"{}\" is not two tokens separated by one space",
                              out_.merges.size(), text));
  }
  const size_t base = out_.merge_arena.size();
  out_.merge_arena.append(text);
  out_.merges.push_back({base, static_cast<uint32_t>(space), base + space + 1,
                         static_cast<uint32_t>(text.size() - space - 1)});
  return true;
}

bool TokenizerJsonSax::close() {
  if (frames_.empty()) return reject("unbalanced JSON");
  if (frames_.back() == Frame::kDom) {
    dom_.pop_back();
    if (frames_.size() == 2 && model_object_open_) model_object_open_ = false;
  }
  frames_.pop_back();
  return true;
}

}  // namespace

std::vector<BpeModel::MergePair> TokenizerJson::merge_pairs() const {
  std::vector<BpeModel::MergePair> pairs;
  pairs.reserve(merges.size());
  const std::string_view arena(merge_arena);
  for (const Merge& merge : merges) {
    pairs.emplace_back(arena.substr(merge.left_offset, merge.left_length),
                       arena.substr(merge.right_offset, merge.right_length));
  }
  return pairs;
}

TokenizerJson parse_tokenizer_json(std::string_view text, const std::string& source_name) {
  TokenizerJson out;
  // Generous guesses that avoid regrowing the arenas for Qwen3-sized files.
  out.vocab_arena.reserve(text.size() / 4);
  out.merge_arena.reserve(text.size() / 4);
  TokenizerJsonSax sax(out);
  bool ok = false;
  try {
    ok = json::sax_parse(text, &sax);
  } catch (const json::exception& ex) {
    fail_input("{}: malformed JSON: {}", source_name, ex.what());
  }
  if (!ok) fail_input("{}: {}", source_name, sax.error());
  if (!out.config.is_object()) fail_input("{}: expected a JSON object at the top level", source_name);
  return out;
}

}  // namespace quantlab::text
