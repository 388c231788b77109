// Robustness: random bytes, token soup and mutations of the real Qwen3 template must either render
// or throw quantlab::Error — never crash, hang, or leak another exception type. Hostile templates
// (unbounded loops, deep nesting, runaway recursion and output) must stop with a clear error.
// Seeds are fixed so failures reproduce; sizes keep the whole file well under a few seconds.
#include "text/jinja/jinja.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <random>

#include "core/error.h"

namespace quantlab::text {
namespace {

using json = nlohmann::ordered_json;
const std::string kData = QUANTLAB_TEST_DATA;

JinjaLimits small_limits() {
  JinjaLimits limits;
  limits.max_steps = 20'000;
  limits.max_output_bytes = 1 << 20;
  return limits;
}

json sample_variables() {
  return json::parse(R"({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hé"},
    {"role": "assistant", "content": "<think>\nr\n</think>\n\nok", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
    {"role": "tool", "content": "{\"x\": 1}"}], "tools": [{"type": "function", "function": {"name": "f"}}],
    "add_generation_prompt": true, "x": 3, "s": "abc"})");
}

// Parses and renders; returns false if anything other than quantlab::Error escaped.
::testing::AssertionResult survives(const std::string& source, const json& variables) {
  try {
    JinjaTemplate::parse(source, "fuzz").render(variables, small_limits());
  } catch (const Error&) {
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "non-quantlab exception '" << e.what() << "' for: " << json(source).dump(-1, ' ', false, json::error_handler_t::replace);
  }
  return ::testing::AssertionSuccess();
}

std::string random_text(std::mt19937& rng, const std::string& alphabet, size_t max_len) {
  std::uniform_int_distribution<size_t> len(0, max_len);
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  std::string s(len(rng), ' ');
  for (char& c : s) c = alphabet[pick(rng)];
  return s;
}

TEST(JinjaFuzz, RandomBytesNeverCrash) {
  std::mt19937 rng(12345);
  std::string alphabet = "{}%#-+ \n\t'\"()[]|.,:=~*/<>!abcxyz019_\\";
  for (int b = 0x80; b < 0x100; b += 7) alphabet += static_cast<char>(b);  // invalid / partial UTF-8
  alphabet += "é中🙂";
  json vars = sample_variables();
  for (int i = 0; i < 4000; ++i) ASSERT_TRUE(survives(random_text(rng, alphabet, 80), vars));
}

TEST(JinjaFuzz, TokenSoupNeverCrashes) {
  const std::vector<std::string> pieces = {
      "{{", "}}", "{%", "%}", "{%-", "-%}", "{#", "#}", "for", "in", "endfor", "if", "elif", "else", "endif",
      "set", "endset", "macro", "endmacro", "break", "continue", "raw", "endraw", "not", "and", "or", "is",
      "defined", "none", "x", "s", "messages", "loop", "ns", "namespace(", "range(", "(", ")", "[", "]", "{", "}",
      ",", ":", ".", "|", "tojson", "length", "join", "+", "-", "*", "/", "//", "%", "**", "~", "==", "<", "=",
      "'a'", "\"b\"", "1", "2.5", "-1", "[::-1]", " ", "\n", "loop.index", "x.y", "raise_exception("};
  std::mt19937 rng(777);
  std::uniform_int_distribution<size_t> pick(0, pieces.size() - 1), count(1, 40);
  json vars = sample_variables();
  for (int i = 0; i < 4000; ++i) {
    std::string source;
    for (size_t n = count(rng); n > 0; --n) source += pieces[pick(rng)] + (rng() % 2 ? " " : "");
    ASSERT_TRUE(survives(source, vars));
  }
}

TEST(JinjaFuzz, MutatedQwenTemplateNeverCrashes) {
  std::ifstream in(kData + "/tokenizers/qwen3/tokenizer_config.json");
  const std::string original = json::parse(in).at("chat_template").get<std::string>();
  std::mt19937 rng(2024);
  const std::string alphabet = "{}%#-+ \n'\"()[]|.,:=~ifnotendforsetin0";
  json vars = sample_variables();
  int rendered = 0;
  for (int i = 0; i < 400; ++i) {
    std::string source = original;
    for (int m = 1 + static_cast<int>(rng() % 4); m > 0; --m) {
      size_t at = rng() % source.size();
      switch (rng() % 3) {
        case 0: source.erase(at, 1 + rng() % 8); break;
        case 1: source.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
        default: source[at] = alphabet[rng() % alphabet.size()];
      }
    }
    ASSERT_TRUE(survives(source, vars));
    try {
      JinjaTemplate::parse(source, "m").render(vars, small_limits());
      ++rendered;
    } catch (const Error&) {
    }
  }
  EXPECT_GT(rendered, 0);  // the mutations are not all fatal: the renderer really ran
}

std::string error_of(const std::string& source, const JinjaLimits& limits = {}) {
  try {
    JinjaTemplate::parse(source, "hostile").render(json::object(), limits);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(JinjaHostile, UnboundedWorkStopsWithAnError) {
  auto start = std::chrono::steady_clock::now();
  JinjaLimits few_steps;
  few_steps.max_steps = 100'000;  // the default (2M) behaves the same, only slower
  EXPECT_NE(error_of("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}", few_steps)
                .find("exceeded 100000 steps"),
            std::string::npos);
  EXPECT_NE(error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("nest"), std::string::npos);
  EXPECT_NE(error_of("{{ range(10**12)|length }}").find("range() is too long"), std::string::npos);
  EXPECT_NE(error_of("{{ 'x' * 10**12 }}").find("string grows beyond"), std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}")
                .find("string grows beyond"),
            std::string::npos);
  JinjaLimits tight;
  tight.max_output_bytes = 1000;
  EXPECT_NE(error_of("{% for i in range(10000) %}0123456789{% endfor %}", tight).find("output exceeds 1000 bytes"),
            std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));  // generous for sanitizer builds
}

TEST(JinjaHostile, DeepNestingIsRejectedNotOverflowed) {
  std::string parens = std::string(100000, '(') + "1" + std::string(100000, ')');
  EXPECT_NE(error_of("{{ " + parens + " }}").find("nests too deeply"), std::string::npos);
  std::string ifs;
  for (int i = 0; i < 5000; ++i) ifs += "{% if true %}";
  EXPECT_NE(error_of(ifs).find("nests too deeply"), std::string::npos);
  std::string sum = "1";
  for (int i = 0; i < 100000; ++i) sum += "+1";
  EXPECT_NE(error_of("{{ " + sum + " }}").find("nests too deeply"), std::string::npos);
  EXPECT_NE(error_of("{{ " + std::string(50000, '-') + "1 }}").find("nests too deeply"), std::string::npos);
  EXPECT_NE(error_of("{{ " + std::string(50000, '[') + std::string(50000, ']') + " }}").find("nests too deeply"),
            std::string::npos);
  EXPECT_NE(error_of("{{ " + std::string(50000, '[') + " }}").find("unterminated expression"), std::string::npos);
  std::string nots;
  for (int i = 0; i < 50000; ++i) nots += "not ";
  EXPECT_NE(error_of("{{ " + nots + "1 }}").find("nests too deeply"), std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}")
                .find("values nest deeper than 200 levels"),
            std::string::npos);
  EXPECT_NE(error_of("{% set ns = namespace() %}{% set ns.me = [ns] %}{{ ns }}").find("cannot store a namespace()"),
            std::string::npos);
  // Input JSON deeper than kMaxValueNesting is refused (1000 levels: nlohmann copies recursively).
  json vars = json::object();
  vars["x"] = json::array();
  for (int i = 0; i < 1000; ++i) vars["x"] = json::array({std::move(vars["x"])});
  EXPECT_THROW(JinjaTemplate::parse("{{ x }}").render(vars), Error);
  // Moderate nesting is fine.
  EXPECT_EQ(JinjaTemplate::parse("{{ " + std::string(50, '(') + "7" + std::string(50, ')') + " }}").render(json::object()), "7");
}

}  // namespace
}  // namespace quantlab::text
