#include "text/jinja/lexer.h"

#include "core/error.h"

#include <algorithm>
#include <cctype>

namespace quantlab::text::jinja {

void fail_at(const std::string& template_name, SourceLoc loc, const std::string& message) {
  throw Error(ErrorKind::kInvalidInput,
              fmt::format("{}:{}:{}: {}", template_name, loc.line, loc.column, message));
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Jinja splits on \r\n, \r and \n, joins with \n and drops one trailing newline.
std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

class Lexer {
 public:
  Lexer(std::string_view source, const std::string& name) : src_(normalize_newlines(source)), name_(name) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  std::vector<Token> run() {
    size_t pos = 0;
    while (pos < src_.size()) {
      size_t tag = find_tag(pos);
      std::string text = src_.substr(pos, tag - pos);
      if (tag == src_.size()) {
        emit_text(std::move(text), pos);
        break;
      }
      char kind = src_[tag + 1];
      char modifier = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      strip_before_tag(text, kind, modifier, pos);
      emit_text(std::move(text), pos);
      pos = kind == '#' ? lex_comment(tag) : lex_tag(tag, kind);
    }
    tokens_.push_back(Token{TokenType::kEnd, "", 0, 0.0, loc(src_.size())});
    return std::move(tokens_);
  }

 private:
  SourceLoc loc(size_t offset) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    size_t line = static_cast<size_t>(it - line_starts_.begin());
    return SourceLoc{static_cast<int>(line), static_cast<int>(offset - line_starts_[line - 1] + 1)};
  }
  [[noreturn]] void error(size_t offset, const std::string& message) const { fail_at(name_, loc(offset), message); }

  size_t find_tag(size_t pos) const {
    while (true) {
      size_t brace = src_.find('{', pos);
      if (brace == std::string::npos || brace + 1 >= src_.size()) return src_.size();
      char next = src_[brace + 1];
      if (next == '{' || next == '%' || next == '#') return brace;
      pos = brace + 1;
    }
  }

  // `{%-` / `{{-` strip all whitespace before the tag; lstrip_blocks strips the spaces and tabs that
  // open the tag's line for block and comment tags, unless the tag says `{%+`.
  void strip_before_tag(std::string& text, char kind, char modifier, size_t text_start) const {
    if (modifier == '-') {
      while (!text.empty() && is_space(text.back())) text.pop_back();
      return;
    }
    if (kind == '{' || modifier == '+') return;
    size_t keep = text.size();
    while (keep > 0 && (text[keep - 1] == ' ' || text[keep - 1] == '\t')) --keep;
    bool at_line_start = keep > 0 ? text[keep - 1] == '\n' : (text_start == 0 || src_[text_start - 1] == '\n');
    if (at_line_start) text.resize(keep);
  }

  // After a tag: `-%}` eats all following whitespace; trim_blocks eats one newline after block and
  // comment tags unless the tag ends with `+%}`.
  size_t skip_after_tag(size_t pos, char end_modifier, bool is_block) const {
    if (end_modifier == '-') {
      while (pos < src_.size() && is_space(src_[pos])) ++pos;
    } else if (is_block && end_modifier != '+' && pos < src_.size() && src_[pos] == '\n') {
      ++pos;
    }
    return pos;
  }

  void emit_text(std::string text, size_t offset) {
    if (!text.empty()) tokens_.push_back(Token{TokenType::kText, std::move(text), 0, 0.0, loc(offset)});
  }

  size_t lex_comment(size_t tag) {
    size_t end = src_.find("#}", tag + 2);
    if (end == std::string::npos) error(tag, "unterminated comment '{#'");
    char modifier = (end > tag + 2 && (src_[end - 1] == '-' || src_[end - 1] == '+')) ? src_[end - 1] : '\0';
    return skip_after_tag(end + 2, modifier, true);
  }

  // Lexes `{{ ... }}` or `{% ... %}` starting at `tag`; returns the offset after the tag.
  size_t lex_tag(size_t tag, char kind) {
    bool block = kind == '%';
    size_t first_token = tokens_.size();
    tokens_.push_back(Token{block ? TokenType::kBlockBegin : TokenType::kVarBegin, "", 0, 0.0, loc(tag)});
    size_t pos = tag + 2;
    if (pos < src_.size() && (src_[pos] == '-' || src_[pos] == '+')) ++pos;
    const char close = block ? '%' : '}';
    int depth = 0;  // open brackets: `}}` inside a dict literal does not end the tag
    while (true) {
      while (pos < src_.size() && is_space(src_[pos])) ++pos;
      if (pos >= src_.size()) error(tag, block ? "unterminated block tag '{%'" : "unterminated expression '{{'");
      char modifier = src_[pos];
      size_t close_at = (modifier == '-' || modifier == '+') ? pos + 1 : pos;
      if (depth == 0 && close_at + 1 < src_.size() && src_[close_at] == close && src_[close_at + 1] == '}') {
        tokens_.push_back(Token{block ? TokenType::kBlockEnd : TokenType::kVarEnd, "", 0, 0.0, loc(pos)});
        size_t after = skip_after_tag(close_at + 2, close_at != pos ? modifier : '\0', block);
        if (block && is_raw_open(first_token)) return lex_raw_body(after, first_token);
        return after;
      }
      pos = lex_token(pos, depth);
    }
  }

  bool is_raw_open(size_t first) const {
    return tokens_.size() == first + 3 && tokens_[first + 1].type == TokenType::kName &&
           tokens_[first + 1].text == "raw";
  }

  // `{% raw %}...{% endraw %}`: the body is text; the endraw tag keeps its whitespace control.
  size_t lex_raw_body(size_t pos, size_t first) {
    tokens_.resize(first);
    size_t search = pos;
    while (true) {
      size_t tag = src_.find("{%", search);
      if (tag == std::string::npos) error(pos, "missing '{% endraw %}'");
      size_t p = tag + 2;
      char modifier = p < src_.size() ? src_[p] : '\0';
      if (modifier == '-' || modifier == '+') ++p;
      while (p < src_.size() && is_space(src_[p])) ++p;
      if (src_.compare(p, 6, "endraw") != 0) {
        search = tag + 2;
        continue;
      }
      p += 6;
      while (p < src_.size() && is_space(src_[p])) ++p;
      char end_modifier = (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ? src_[p++] : '\0';
      if (src_.compare(p, 2, "%}") != 0) error(tag, "malformed '{% endraw %}'");
      std::string text = src_.substr(pos, tag - pos);
      strip_before_tag(text, '%', modifier, pos);
      emit_text(std::move(text), pos);
      return skip_after_tag(p + 2, end_modifier, true);
    }
  }

  size_t lex_token(size_t pos, int& depth) {
    char c = src_[pos];
    if (is_name_start(c)) {
      size_t end = pos;
      while (end < src_.size() && is_name_char(src_[end])) ++end;
      tokens_.push_back(Token{TokenType::kName, src_.substr(pos, end - pos), 0, 0.0, loc(pos)});
      return end;
    }
    if (is_digit(c)) return lex_number(pos);
    if (c == '\'' || c == '"') return lex_string(pos);
    static const char* kTwoChar[] = {"//", "**", "==", "!=", "<=", ">="};
    for (const char* op : kTwoChar) {
      if (src_.compare(pos, 2, op) == 0) {
        tokens_.push_back(Token{TokenType::kOperator, op, 0, 0.0, loc(pos)});
        return pos + 2;
      }
    }
    static const std::string kOneChar = "+-*/%~()[]{},.:|=<>";
    if (kOneChar.find(c) == std::string::npos) error(pos, fmt::format("unexpected character '{}'", c));
    if (c == '(' || c == '[' || c == '{') ++depth;
    if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
    tokens_.push_back(Token{TokenType::kOperator, std::string(1, c), 0, 0.0, loc(pos)});
    return pos + 1;
  }

  size_t lex_number(size_t pos) {
    size_t end = pos;
    auto digits = [&] {
      while (end < src_.size() && (is_digit(src_[end]) || (src_[end] == '_' && end + 1 < src_.size() && is_digit(src_[end + 1])))) ++end;
    };
    digits();
    bool is_float = false;
    if (end + 1 < src_.size() && src_[end] == '.' && is_digit(src_[end + 1])) {
      is_float = true;
      ++end;
      digits();
    }
    if (end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
      size_t exp = end + 1;
      if (exp < src_.size() && (src_[exp] == '+' || src_[exp] == '-')) ++exp;
      if (exp < src_.size() && is_digit(src_[exp])) {
        is_float = true;
        end = exp;
        digits();
      }
    }
    std::string text;
    for (size_t i = pos; i < end; ++i) {
      if (src_[i] != '_') text += src_[i];
    }
    Token token{is_float ? TokenType::kFloat : TokenType::kInt, text, 0, 0.0, loc(pos)};
    try {
      if (is_float) {
        token.float_value = std::stod(text);
      } else {
        token.int_value = std::stoll(text);
      }
    } catch (const std::exception&) {
      error(pos, fmt::format("number literal '{}' is out of range", text));
    }
    tokens_.push_back(std::move(token));
    return end;
  }

  uint32_t read_hex(size_t& pos, int count, size_t escape_at) const {
    uint32_t value = 0;
    for (int i = 0; i < count; ++i, ++pos) {
      if (pos >= src_.size() || !std::isxdigit(static_cast<unsigned char>(src_[pos]))) {
        error(escape_at, "truncated \\x, \\u or \\U escape in string literal");
      }
      char h = static_cast<char>(std::tolower(static_cast<unsigned char>(src_[pos])));
      value = value * 16 + static_cast<uint32_t>(h <= '9' ? h - '0' : h - 'a' + 10);
    }
    return value;
  }

  // Python string-literal escapes (Jinja decodes literals with "unicode-escape").
  size_t lex_string(size_t start) {
    char quote = src_[start];
    std::string value;
    size_t pos = start + 1;
    while (true) {
      if (pos >= src_.size()) error(start, "unterminated string literal");
      char c = src_[pos];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        ++pos;
        continue;
      }
      size_t escape_at = pos;
      if (++pos >= src_.size()) error(start, "unterminated string literal");
      char e = src_[pos++];
      switch (e) {
        case 'n': value += '\n'; break;
        case 't': value += '\t'; break;
        case 'r': value += '\r'; break;
        case 'b': value += '\b'; break;
        case 'f': value += '\f'; break;
        case 'v': value += '\v'; break;
        case 'a': value += '\a'; break;
        case '\\': value += '\\'; break;
        case '\'': value += '\''; break;
        case '"': value += '"'; break;
        case '\n': break;  // line continuation
        case 'x': append_utf8(value, read_hex(pos, 2, escape_at)); break;
        case 'u': append_utf8(value, read_hex(pos, 4, escape_at)); break;
        case 'U': {
          uint32_t cp = read_hex(pos, 8, escape_at);
          if (cp > 0x10ffff) error(escape_at, "\\U escape beyond U+10FFFF");
          append_utf8(value, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int i = 0; i < 2 && pos < src_.size() && src_[pos] >= '0' && src_[pos] <= '7'; ++i) {
              cp = cp * 8 + static_cast<uint32_t>(src_[pos++] - '0');
            }
            append_utf8(value, cp);
          } else {
            value += '\\';  // unknown escapes stay as written, as in Python
            value += e;
          }
      }
    }
    tokens_.push_back(Token{TokenType::kString, std::move(value), 0, 0.0, loc(start)});
    return pos + 1;
  }

  std::string src_;
  const std::string& name_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source, const std::string& template_name) {
  return Lexer(source, template_name).run();
}

}  // namespace quantlab::text::jinja
