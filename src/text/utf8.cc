#include "text/utf8.h"

#include <utf8proc.h>

#include <cstdint>
#include <cstdlib>

namespace quantlab::text {

namespace {

struct SequenceShape {
  uint8_t length;       // total bytes, 0 for a byte that cannot start a sequence
  uint8_t second_low;   // allowed range of the second byte (narrower than 80..BF for E0, ED, F0, F4:
  uint8_t second_high;  // this is what excludes overlongs, surrogates and code points > U+10FFFF)
};

SequenceShape shape_of(uint8_t lead) {
  if (lead < 0x80) return {1, 0, 0};
  if (lead < 0xC2) return {0, 0, 0};
  if (lead < 0xE0) return {2, 0x80, 0xBF};
  if (lead == 0xE0) return {3, 0xA0, 0xBF};
  if (lead == 0xED) return {3, 0x80, 0x9F};
  if (lead < 0xF0) return {3, 0x80, 0xBF};
  if (lead == 0xF0) return {4, 0x90, 0xBF};
  if (lead < 0xF4) return {4, 0x80, 0xBF};
  if (lead == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

bool is_continuation(uint8_t byte) { return (byte & 0xC0) == 0x80; }

// Number of leading bytes that agree with a valid sequence (1 for a bad lead byte).
size_t matching_prefix(std::string_view bytes, SequenceShape shape) {
  if (shape.length <= 1) return 1;
  size_t matched = 1;
  while (matched < shape.length && matched < bytes.size()) {
    const auto byte = static_cast<uint8_t>(bytes[matched]);
    const bool ok = matched == 1 ? (byte >= shape.second_low && byte <= shape.second_high)
                                 : is_continuation(byte);
    if (!ok) break;
    ++matched;
  }
  return matched;
}

}  // namespace

size_t valid_sequence_length(std::string_view bytes) {
  if (bytes.empty()) return 0;
  const SequenceShape shape = shape_of(static_cast<uint8_t>(bytes[0]));
  if (shape.length == 0) return 0;
  return matching_prefix(bytes, shape) == shape.length ? shape.length : 0;
}

size_t maximal_subpart_length(std::string_view bytes) {
  if (bytes.empty()) return 0;
  return matching_prefix(bytes, shape_of(static_cast<uint8_t>(bytes[0])));
}

bool is_ascii(std::string_view bytes) {
  for (char c : bytes) {
    if (static_cast<uint8_t>(c) >= 0x80) return false;
  }
  return true;
}

bool is_valid_utf8(std::string_view bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    if (static_cast<uint8_t>(bytes[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const size_t length = valid_sequence_length(bytes.substr(pos));
    if (length == 0) return false;
    pos += length;
  }
  return true;
}

char32_t decode_valid_sequence(std::string_view bytes) {
  const auto lead = static_cast<uint8_t>(bytes[0]);
  const size_t length = shape_of(lead).length;
  if (length == 1) return lead;
  static constexpr uint8_t kLeadMask[] = {0, 0, 0x1F, 0x0F, 0x07};
  char32_t code_point = lead & kLeadMask[length];
  for (size_t i = 1; i < length; ++i) {
    code_point = (code_point << 6) | (static_cast<uint8_t>(bytes[i]) & 0x3F);
  }
  return code_point;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

void append_utf8_lossy(std::string& out, std::string_view bytes) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    // Copy the longest valid run in one go; most decoded text is valid.
    size_t run_end = pos;
    while (run_end < bytes.size()) {
      const size_t length = static_cast<uint8_t>(bytes[run_end]) < 0x80
                                ? 1
                                : valid_sequence_length(bytes.substr(run_end));
      if (length == 0) break;
      run_end += length;
    }
    out.append(bytes.substr(pos, run_end - pos));
    if (run_end == bytes.size()) break;
    append_utf8(out, kReplacementChar);
    pos = run_end + maximal_subpart_length(bytes.substr(run_end));
  }
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  append_utf8_lossy(out, bytes);
  return out;
}

size_t incomplete_tail_length(std::string_view bytes) {
  const size_t n = bytes.size();
  // A sequence is at most 4 bytes, so an incomplete one starts within the last 3.
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const size_t start = n - back;
    const auto byte = static_cast<uint8_t>(bytes[start]);
    if (is_continuation(byte)) continue;
    const SequenceShape shape = shape_of(byte);
    const bool incomplete = shape.length > back &&
                            matching_prefix(bytes.substr(start), shape) == back;
    return incomplete ? back : 0;
  }
  return 0;
}

namespace {

void append_nfc_of_valid_run(std::string& out, std::string_view run) {
  if (is_ascii(run)) {
    out.append(run);
    return;
  }
  utf8proc_uint8_t* normalized = nullptr;
  const utf8proc_ssize_t length =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(run.data()),
                   static_cast<utf8proc_ssize_t>(run.size()), &normalized,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (length < 0) {
    out.append(run);  // cannot happen for validated input; keep the text rather than lose it
    return;
  }
  out.append(reinterpret_cast<const char*>(normalized), static_cast<size_t>(length));
  std::free(normalized);
}

}  // namespace

std::string nfc_normalize(std::string_view bytes) {
  if (is_ascii(bytes)) return std::string(bytes);  // ASCII is always in NFC
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t run_end = pos;
    while (run_end < bytes.size()) {
      const size_t length = valid_sequence_length(bytes.substr(run_end));
      if (length == 0) break;
      run_end += length;
    }
    append_nfc_of_valid_run(out, bytes.substr(pos, run_end - pos));
    if (run_end == bytes.size()) break;
    const size_t bad = maximal_subpart_length(bytes.substr(run_end));
    out.append(bytes.substr(run_end, bad));
    pos = run_end + bad;
  }
  return out;
}

}  // namespace quantlab::text
