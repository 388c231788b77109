#include "text/tokenizer.h"

#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"
#include "text/tokenizer_data.h"
#include "text/utf8.h"

namespace quantlab::text {

namespace {

// Buffers reused across the segments of one encode call.
struct EncodeScratch {
  std::vector<AddedTokenMatcher::Segment> segments;
  std::vector<std::string_view> pieces;
  std::string normalized;
  std::string prefixed;
};

void encode_pre_tokenized(const TokenizerData& data, std::string_view text,
                          std::vector<int32_t>& ids, EncodeScratch& scratch) {
  data.pre_tokenizer->split(text, scratch.pieces, scratch.prefixed);
  for (std::string_view piece : scratch.pieces) data.bpe->encode(piece, ids);
}

// Text between raw added tokens: normalize, cut out normalized added tokens, pre-tokenize, BPE.
void encode_plain_segment(const TokenizerData& data, std::string_view segment,
                          std::vector<int32_t>& ids, EncodeScratch& scratch) {
  std::string_view text = segment;
  if (data.nfc && !is_ascii(segment)) {
    scratch.normalized = nfc_normalize(segment);
    text = scratch.normalized;
  }
  if (data.normalized_added.empty()) {
    encode_pre_tokenized(data, text, ids, scratch);
    return;
  }
  std::vector<AddedTokenMatcher::Segment> parts;
  data.normalized_added.split(text, parts);
  for (const auto& part : parts) {
    if (part.id >= 0) {
      ids.push_back(part.id);
    } else {
      encode_pre_tokenized(data, text.substr(part.begin, part.end - part.begin), ids, scratch);
    }
  }
}

}  // namespace

Tokenizer Tokenizer::from_file(const std::string& path) {
  std::string file = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) file = (std::filesystem::path(path) / "tokenizer.json").string();
  const MappedFile mapped(file);
  const std::string_view json(reinterpret_cast<const char*>(mapped.data()), mapped.size());
  return from_json(json, file);
}

Tokenizer Tokenizer::from_json(std::string_view json, const std::string& source_name) {
  return Tokenizer(build_tokenizer_data(parse_tokenizer_json(json, source_name), source_name));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  encode_into(text, ids);
  return ids;
}

void Tokenizer::encode_into(std::string_view text, std::vector<int32_t>& ids) const {
  const TokenizerData& data = *data_;
  EncodeScratch scratch;
  data.raw_added.split(text, scratch.segments);
  const std::vector<AddedTokenMatcher::Segment> segments = std::move(scratch.segments);
  for (const auto& segment : segments) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
    } else {
      encode_plain_segment(data, text.substr(segment.begin, segment.end - segment.begin), ids,
                           scratch);
    }
  }
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (skip_special_tokens && is_special(id)) continue;
    bytes.append(token_bytes(id));
  }
  return utf8_lossy(bytes);
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  const auto it = data_->added_by_content.find(std::string(token));
  if (it != data_->added_by_content.end()) return it->second;
  return data_->bpe->vocabulary().find(token);
}

std::string_view Tokenizer::token_string(int32_t id) const {
  if (const AddedToken* added = data_->added_token(id)) return added->content;
  return data_->bpe->vocabulary().token(id);
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= data_->bytes_by_id.size()) return {};
  const auto [offset, length] = data_->bytes_by_id[id];
  return std::string_view(data_->bytes_arena).substr(offset, length);
}

bool Tokenizer::is_special(int32_t id) const {
  const AddedToken* added = data_->added_token(id);
  return added != nullptr && added->special;
}

bool Tokenizer::is_added(int32_t id) const { return data_->added_token(id) != nullptr; }

size_t Tokenizer::vocab_size() const { return data_->vocab_size; }

}  // namespace quantlab::text
