#include "eval/suite.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "test_support.h"

namespace quantlab::eval {
namespace {

using testing::data_path;
using testing::TempDir;

TEST(Suite, LoadsBundledSuites) {
  const auto tools = load_tools(data_path("tool-calling/tools.json"));
  EXPECT_EQ(tools.names, (std::vector<std::string>{"get_weather", "get_stock_price", "search_web", "get_time"}));
  const auto seed = load_suite(data_path("tool-calling/queries/seed5.jsonl"), &tools);
  ASSERT_EQ(seed.queries.size(), 5u);
  size_t tool_queries = 0;
  for (const auto& q : seed.queries) tool_queries += q.expect_tool;
  EXPECT_EQ(tool_queries, 3u);
  EXPECT_EQ(load_suite(data_path("tool-calling/queries/dev40.jsonl"), &tools).queries.size(), 40u);
}

std::string expect_error(const std::string& content, const ToolSet* tools = nullptr) {
  TempDir tmp;
  std::ofstream(tmp / "s.jsonl") << content;
  try {
    load_suite(tmp / "s.jsonl", tools);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted: " << content;
  return "";
}

TEST(Suite, MalformedLineNamedByNumber) {
  const std::string ok = R"({"id": "a", "messages": [{"role": "user", "content": "hi"}], "expected": "direct"})";
  EXPECT_NE(expect_error(ok + "\n" + ok.substr(0, 20) + "\n").find("s.jsonl:2:"), std::string::npos);
  EXPECT_NE(expect_error(ok + "\n" + ok + "\n").find("duplicate query id 'a'"), std::string::npos);
  EXPECT_NE(expect_error(R"({"id": "b", "messages": [], "expected": "direct"})").find(":1:"), std::string::npos);
  EXPECT_NE(expect_error(R"({"id": "c", "messages": [{"role": "user"}], "expected": "maybe"})").find("'expected'"),
            std::string::npos);
  EXPECT_NE(expect_error("").find("no queries"), std::string::npos);
}

TEST(Suite, UnknownToolNamed) {
  const auto tools = load_tools(data_path("tool-calling/tools.json"));
  const auto msg = expect_error(
      R"({"id": "q", "messages": [{"role": "user", "content": "x"}], "expected": "tool", "tool": "get_horoscope"})", &tools);
  EXPECT_NE(msg.find("unknown tool 'get_horoscope'"), std::string::npos) << msg;
}

}  // namespace
}  // namespace quantlab::eval
