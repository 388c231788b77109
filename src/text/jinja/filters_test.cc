// Jinja filters, tests and str/dict methods. The reference table's expected strings come from
// Python Jinja2 3.1.6 configured like transformers (see jinja_test.cc), not from this engine.
#include "text/jinja/jinja.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "text/jinja/value.h"

namespace quantlab::text {
namespace {

using json = nlohmann::ordered_json;

std::string render(const std::string& source, const json& variables = json::object()) {
  return JinjaTemplate::parse(source, "test").render(variables);
}

struct ReferenceCase {
  const char* source;
  const char* variables;
  const char* expected;
};

const ReferenceCase kFilterCases[] = {
    {"{{ {'b': 'é', 'a': [1, 2.5, none, true, 'x\"y\\n']}|tojson }}|{{ [1,{'k':'v'}]|tojson(indent=2) }}|{{ {}|tojson }}|{{ []|tojson(indent=2) }}|{{ 'ü\\u0001'|tojson }}",
     "{}",
     "{\"b\": \"é\", \"a\": [1, 2.5, null, true, \"x\\\"y\\n\"]}|[\n  1,\n  {\n    \"k\": \"v\"\n  }\n]|{}|[]|\"ü\\u0001\""},
    {"{{ {'a': {'b': [1, {}], 'c': []}}|tojson(indent=4) }}",
     "{}",
     "{\n    \"a\": {\n        \"b\": [\n            1,\n            {}\n        ],\n        \"c\": []\n    }\n}"},
    {"{{ '  x  '|trim }}|{{ 'xxhixx'|trim('x') }}|{{ 'abc'|length }}|{{ 'héllo'|length }}|{{ [1,2]|count }}|{{ {'a':1}|length }}|{{ 'ab'|list }}|{{ [1,2,3]|join(', ') }}|{{ ['a','b']|join }}",
     "{}",
     "x|hi|3|5|2|1|['a', 'b']|1, 2, 3|ab"},
    {"{{ x|default('d') }}|{{ none|default('d') }}|{{ ''|default('d', true) }}|{{ x|d('e') }}|{{ [3,4]|first }}|{{ [3,4]|last }}|{{ 'abc'|first }}",
     "{}",
     "d|None|d|e|3|4|a"},
    {"{{ 'HeLLo wOrld'|lower }}|{{ 'straße'|upper }}|{{ 'hello WORLD'|capitalize }}|{{ \"they're bill's\"|title }}|{{ 'aaa'|replace('a', 'b', 2) }}|{{ 42|string }}|{{ '42'|int + 1 }}|{{ '3.7'|int }}|{{ 'x'|int }}|{{ '2.5'|float }}|{{ 3|float }}",
     "{}",
     "hello world|STRASSE|Hello world|They're Bill's|bba|42|43|3|0|2.5|3.0"},
    {"{{ {'a': 1, 'b': 2}|items|list }}|{{ [{'n': 1, 'ok': true}, {'n': 2, 'ok': false}]|selectattr('ok')|map(attribute='n')|list }}|{{ [{'r': 'u'}, {'r': 'a'}]|selectattr('r', 'equalto', 'u')|list }}|{{ [{'r': 'u'}, {'r': 'a'}]|rejectattr('r', 'eq', 'u')|list }}",
     "{}",
     "[('a', 1), ('b', 2)]|[1]|[{'r': 'u'}]|[{'r': 'a'}]"},
    {"{{ [1,2,3,4]|select('odd')|list }}|{{ ['a', 'b', 'code']|reject('equalto', 'code')|join(', ') }}|{{ ['a','B']|map('upper')|list }}|{{ [3,1,2]|sort }}|{{ ['b','A','c']|sort }}|{{ [3,1,2]|sort(reverse=true) }}|{{ [1,2,1]|unique|list }}",
     "{}",
     "[1, 3]|a, b|['A', 'B']|[1, 2, 3]|['A', 'b', 'c']|[3, 2, 1]|[1, 2]"},
    {"{{ '<a&b>'|e }}|{{ '<x>'|escape }}|{{ '<x>'|safe }}|{{ [1,2]|reverse|list }}|{{ 'abc'|reverse }}|{{ -3|abs }}|{{ 2.567|round(1) }}|{{ 2.5|round }}|{{ [1,2,3]|sum }}|{{ [3,1]|min }}|{{ [3,1]|max }}",
     "{}",
     "&lt;a&amp;b&gt;|&lt;x&gt;|<x>|[2, 1]|cba|3|2.6|2.0|6|1|3"},
    {"{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}|{{ '%s-%d'|format('x', 3) }}|{{ '%s and %s' % ('a', 'b') }}",
     "{}",
     "a\n  b\n\n  c|  a\n  b|x-3|a and b"},
    {"{{ x is defined }}{{ x is undefined }}{{ none is none }}{{ 'a' is string }}{{ 1 is number }}{{ 1.5 is number }}{{ true is number }}{{ 1 is integer }}{{ true is integer }}{{ 1.0 is float }}",
     "{}",
     "FalseTrueTrueTrueTrueTrueTrueTrueFalseTrue"},
    {"{{ {} is mapping }}{{ [] is mapping }}{{ 'a' is iterable }}{{ 1 is iterable }}{{ [] is sequence }}{{ x is iterable }}{{ true is boolean }}{{ true is true }}{{ 1 is true }}{{ false is false }}{{ 0 is false }}",
     "{}",
     "TrueFalseTrueFalseTrueTrueTrueTrueFalseTrueFalse"},
    {"{{ 3 is equalto 3 }}{{ 3 is eq(4) }}{{ 4 is divisibleby 2 }}{{ 3 is odd }}{{ 3 is even }}{{ 2 is in [1,2] }}{{ 3 is gt 2 }}{{ 'ab' is lower }}{{ none is not none }}{{ not x is defined }}",
     "{}",
     "TrueFalseTrueTrueFalseTrueTrueTrueFalseTrue"},
    {"{{ 'hello'.startswith('he') }}{{ 'hello'.endswith(('x', 'lo')) }}|{{ 'a,b,,c'.split(',') }}|{{ '  a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ '\\n x \\n'.strip() }}|{{ 'xxaxx'.lstrip('x') }}|{{ 'xxaxx'.rstrip('x') }}",
     "{}",
     "TrueTrue|['a', 'b', '', 'c']|['a', 'b']|['a', 'b c']|x|axx|xxa"},
    {"{{ 'aBc'.upper() }}{{ 'aBc'.lower() }}|{{ 'hello world'.title() }}|{{ 'a-b-c'.replace('-', '+') }}|{{ '{} and {}'.format('x', 1) }}|{{ '{0}{name}'.format('a', name='b') }}|{{ 'abcb'.find('b') }}|{{ 'abcb'.count('b') }}|{{ ', '.join(['a','b']) }}",
     "{}",
     "ABCabc|Hello World|a+b+c|x and 1|ab|1|2|a, b"},
    {"{{ m.content.split('</think>')[-1].lstrip('\\n') }}|{{ m.content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}",
     "{\"m\": {\"content\": \"<think>\\nr1\\n</think>\\n\\nanswer\"}}",
     "answer|r1"},
    {"{{ {'a': {'b': 1}}|tojson }}{{ [{'x': 'y'}]|tojson }}",
     "{}",
     "{\"a\": {\"b\": 1}}[{\"x\": \"y\"}]"},
    {"{{ d|dictsort }}",
     "{\"d\": {\"b\": 1, \"a\": 2}}",
     "[('a', 2), ('b', 1)]"},
    {"{{ d|tojson(ensure_ascii=True) }}",
     "{\"d\": {\"b\": \"é 🙂 中\", \"a\": [1, {\"z\": null, \"y\": 2.5}], \"c\": {}}}",
     "{\"b\": \"\\u00e9 \\ud83d\\ude42 \\u4e2d\", \"a\": [1, {\"z\": null, \"y\": 2.5}], \"c\": {}}"},
    {"{{ d|tojson(sort_keys=True) }}",
     "{\"d\": {\"b\": \"é 🙂 中\", \"a\": [1, {\"z\": null, \"y\": 2.5}], \"c\": {}}}",
     "{\"a\": [1, {\"y\": 2.5, \"z\": null}], \"b\": \"é 🙂 中\", \"c\": {}}"},
    {"{{ d|tojson(separators=(',', ':')) }}",
     "{\"d\": {\"b\": \"é 🙂 中\", \"a\": [1, {\"z\": null, \"y\": 2.5}], \"c\": {}}}",
     "{\"b\":\"é 🙂 中\",\"a\":[1,{\"z\":null,\"y\":2.5}],\"c\":{}}"},
    {"{{ d|tojson(indent=2, separators=(',', ': ')) }}",
     "{\"d\": {\"b\": \"é 🙂 中\", \"a\": [1, {\"z\": null, \"y\": 2.5}], \"c\": {}}}",
     "{\n  \"b\": \"é 🙂 中\",\n  \"a\": [\n    1,\n    {\n      \"z\": null,\n      \"y\": 2.5\n    }\n  ],\n  \"c\": {}\n}"},
    {"{{ d|tojson(indent=-1) }}",
     "{\"d\": {\"b\": \"é 🙂 中\", \"a\": [1, {\"z\": null, \"y\": 2.5}], \"c\": {}}}",
     "{\n\"b\": \"é 🙂 中\",\n\"a\": [\n1,\n{\n\"z\": null,\n\"y\": 2.5\n}\n],\n\"c\": {}\n}"},
    {"{{ d|tojson(indent=0) }}",
     "{\"d\": {\"b\": \"é 🙂 中\", \"a\": [1, {\"z\": null, \"y\": 2.5}], \"c\": {}}}",
     "{\n\"b\": \"é 🙂 中\",\n\"a\": [\n1,\n{\n\"z\": null,\n\"y\": 2.5\n}\n],\n\"c\": {}\n}"},
    {"{{ d|tojson(false, 1, none, true) }}",
     "{\"d\": {\"b\": \"é 🙂 中\", \"a\": [1, {\"z\": null, \"y\": 2.5}], \"c\": {}}}",
     "{\n \"a\": [\n  1,\n  {\n   \"y\": 2.5,\n   \"z\": null\n  }\n ],\n \"b\": \"é 🙂 中\",\n \"c\": {}\n}"},
};

TEST(JinjaReference, FiltersTestsAndMethods) {
  for (const auto& c : kFilterCases) {
    SCOPED_TRACE(c.source);
    EXPECT_EQ(render(c.source, json::parse(c.variables)), c.expected);
  }
}

// transformers' tojson: json.dumps(ensure_ascii=False) with ", " / ": " separators, keys in
// insertion order, Python float formatting, control characters escaped, non-ASCII kept.
TEST(JinjaTojson, MatchesPythonJsonDumps) {
  json tool = json::parse(R"({"z": 1, "a": {"é": "中文 🙂", "f": 1.0, "g": 0.1, "h": 1e-7, "i": 1e22, "n": null},
                              "list": [true, false, [], {}], "esc": "quote\" slash\\ tab\t nl\n bell\u0007 /"})");
  EXPECT_EQ(render("{{ t|tojson }}", {{"t", tool}}),
            "{\"z\": 1, \"a\": {\"é\": \"中文 🙂\", \"f\": 1.0, \"g\": 0.1, \"h\": 1e-07, \"i\": 1e+22, \"n\": null}, "
            "\"list\": [true, false, [], {}], \"esc\": \"quote\\\" slash\\\\ tab\\t nl\\n bell\\u0007 /\"}");
  EXPECT_EQ(render("{{ t|tojson(indent=2) }}", {{"t", json::parse(R"({"a": [1, {"b": []}]})")}}),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": []\n    }\n  ]\n}");
}

TEST(JinjaValue, PythonFloatRepr) {
  using jinja::format_python_float;
  EXPECT_EQ(format_python_float(1.0), "1.0");
  EXPECT_EQ(format_python_float(0.1), "0.1");
  EXPECT_EQ(format_python_float(-2.5), "-2.5");
  EXPECT_EQ(format_python_float(1e16), "1e+16");
  EXPECT_EQ(format_python_float(1234567890123456.0), "1234567890123456.0");
  EXPECT_EQ(format_python_float(0.0001), "0.0001");
  EXPECT_EQ(format_python_float(0.00001), "1e-05");
  EXPECT_EQ(format_python_float(1.5e-10), "1.5e-10");
  EXPECT_EQ(format_python_float(123.456), "123.456");
  EXPECT_EQ(format_python_float(1.0 / 3.0), "0.3333333333333333");
}

TEST(JinjaFilters, DefaultAndLengthOnUndefined) {
  EXPECT_EQ(render("{{ missing|default('x') }}{{ missing|length }}{{ missing|list|length }}"), "x00");
  EXPECT_EQ(render("{{ v|default('x') }}", {{"v", nullptr}}), "None");  // None is defined
  EXPECT_EQ(render("{{ v|default('x', true) }}", {{"v", ""}}), "x");
}

TEST(JinjaFilters, SelectattrMapJoinChain) {
  json messages = json::parse(R"([{"role": "system", "content": "s"}, {"role": "user", "content": "u1"},
                                  {"role": "assistant", "content": "a"}, {"role": "user", "content": "u2"}])");
  EXPECT_EQ(render("{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|join('+') }}",
                   {{"messages", messages}}),
            "u1+u2");
  EXPECT_EQ(render("{{ messages|rejectattr('role', 'in', ['user', 'system'])|list|length }}", {{"messages", messages}}),
            "1");
  EXPECT_EQ(render("{{ (messages|last).content }}", {{"messages", messages}}), "u2");
}

TEST(JinjaMethods, StringMethodsCountCodePoints) {
  EXPECT_EQ(render("{{ 'héllo wörld'.split(' ')|length }}{{ 'héllo'[1] }}{{ 'héllo'|length }}"), "2é5");
  EXPECT_EQ(render("{{ '«x»'.strip('«»') }}"), "x");
  EXPECT_EQ(render("{{ 'ÉCOLE'.lower() }} {{ 'école'|upper }}"), "école ÉCOLE");
}

TEST(JinjaMethods, DictMethodsAndKeysShadowing) {
  json d = json::parse(R"({"items": "shadow", "keys": 1})");
  EXPECT_EQ(render("{{ d['items'] }} {{ d.items()|list|length }} {{ d.get('keys') }} {{ d.get('x', 'dflt') }}", {{"d", d}}),
            "shadow 2 1 dflt");
}

}  // namespace
}  // namespace quantlab::text
