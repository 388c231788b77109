// UTF-8 helpers for the tokenizer: validation that matches the Unicode standard (no overlongs, no
// surrogates, nothing above U+10FFFF), lossy decoding with the "maximal subpart" replacement rule that
// Rust's String::from_utf8_lossy (and so Hugging Face tokenizers) uses, and NFC via utf8proc.
// All functions take raw bytes: tokenizer input may be invalid UTF-8 and must never crash.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace quantlab::text {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Length of the valid UTF-8 sequence starting at bytes[0], or 0 when bytes does not start with one
// (empty input, a stray continuation byte, a truncated, overlong or surrogate sequence).
size_t valid_sequence_length(std::string_view bytes);

// Length of the longest prefix of bytes[0..] that could start a valid sequence (the "maximal subpart"
// of an ill-formed sequence); at least 1 for non-empty input. Equals valid_sequence_length when the
// sequence is complete and valid.
size_t maximal_subpart_length(std::string_view bytes);

bool is_valid_utf8(std::string_view bytes);
bool is_ascii(std::string_view bytes);

// The code point of the valid sequence at bytes[0] (which must have valid_sequence_length > 0).
char32_t decode_valid_sequence(std::string_view bytes);

void append_utf8(std::string& out, char32_t code_point);

// Decodes bytes as UTF-8, replacing each maximal ill-formed subpart with U+FFFD.
std::string utf8_lossy(std::string_view bytes);
void append_utf8_lossy(std::string& out, std::string_view bytes);

// Number of trailing bytes that form an incomplete (but so far valid) sequence: what a streaming
// decoder must hold back until the next bytes arrive. 0 when bytes ends on a sequence boundary or
// with bytes that can never become valid.
size_t incomplete_tail_length(std::string_view bytes);

// Unicode NFC of bytes. Ill-formed bytes are copied through unchanged and split the text into
// independently normalized runs, so invalid input never throws.
std::string nfc_normalize(std::string_view bytes);

}  // namespace quantlab::text
