// Reply parsing: Qwen/Hermes <tool_call> blocks, <think> reasoning, and the "starts with a tool
// call" decision the benchmark uses (tests/data README: "tool" when the reply starts with <tool_call>).
#include "text/tool_calls.h"

#include <gtest/gtest.h>

namespace quantlab::text {
namespace {

using json = nlohmann::ordered_json;

TEST(ToolCalls, ParsesOneQwenStyleCall) {
  ParsedReply r = parse_reply("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_TRUE(r.tool_calls[0].ok()) << r.tool_calls[0].error;
  EXPECT_EQ(r.tool_calls[0].name, "get_weather");
  EXPECT_EQ(r.tool_calls[0].arguments, json::parse(R"({"city": "Paris"})"));
  EXPECT_EQ(r.content, "");
  EXPECT_TRUE(r.starts_with_tool_call);
}

TEST(ToolCalls, ParsesSeveralCallsAndKeepsArgumentOrder) {
  ParsedReply r = parse_reply(
      "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"z\": 1, \"b\": [1, 2]}}\n</tool_call>\n"
      "<tool_call>\n{\"name\": \"b\", \"arguments\": {}}\n</tool_call>");
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].arguments.dump(), R"({"z":1,"b":[1,2]})");
  EXPECT_EQ(r.tool_calls[1].name, "b");
  EXPECT_TRUE(r.tool_calls[1].arguments.is_object());
  EXPECT_EQ(r.content, "");
}

TEST(ToolCalls, MalformedCallsAreKeptWithAnError) {
  ParsedReply r = parse_reply("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par\n</tool_call>"
                              "<tool_call>[1, 2]</tool_call><tool_call>{\"arguments\": {}}</tool_call>"
                              "<tool_call>{\"name\": \"x\"}</tool_call>");
  ASSERT_EQ(r.tool_calls.size(), 4u);
  EXPECT_FALSE(r.tool_calls[0].ok());
  EXPECT_NE(r.tool_calls[0].error.find("not valid JSON"), std::string::npos);
  EXPECT_EQ(r.tool_calls[0].raw, "\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par\n");
  EXPECT_NE(r.tool_calls[1].error.find("not an object"), std::string::npos);
  EXPECT_NE(r.tool_calls[2].error.find("no string \"name\""), std::string::npos);
  EXPECT_NE(r.tool_calls[3].error.find("no \"arguments\""), std::string::npos);
  EXPECT_EQ(r.tool_calls[3].name, "x");
}

TEST(ToolCalls, UnterminatedCallIsReportedButDecoded) {
  ParsedReply r = parse_reply("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"q\": \"x\"}}\n");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].name, "f");
  EXPECT_NE(r.tool_calls[0].error.find("unterminated"), std::string::npos);
}

TEST(ToolCalls, StringArgumentsAreDecodedWhenTheyAreJson) {
  ParsedReply r = parse_reply(R"(<tool_call>{"name": "f", "arguments": "{\"k\": \"v\"}"}</tool_call>)"
                              R"(<tool_call>{"name": "g", "arguments": "plain text"}</tool_call>)");
  ASSERT_EQ(r.tool_calls.size(), 2u);
  EXPECT_EQ(r.tool_calls[0].arguments, json::parse(R"({"k": "v"})"));
  EXPECT_EQ(r.tool_calls[1].arguments, json("plain text"));
  EXPECT_TRUE(r.tool_calls[1].ok());
}

TEST(ToolCalls, SeparatesReasoningFromContent) {
  ParsedReply r = parse_reply("<think>\nThe user greets me.\n</think>\n\nHello! How can I help?");
  EXPECT_EQ(r.reasoning, "The user greets me.");
  EXPECT_EQ(r.content, "Hello! How can I help?");
  EXPECT_TRUE(r.tool_calls.empty());
  EXPECT_FALSE(r.starts_with_tool_call);
}

TEST(ToolCalls, ReplyThatBeganInsideAnOpenThinkBlock) {
  ParsedReply r = parse_reply("still thinking\n</think>\n\nAnswer.");
  EXPECT_EQ(r.reasoning, "still thinking");
  EXPECT_EQ(r.content, "Answer.");
}

TEST(ToolCalls, CallAfterReasoningAndTextAroundCalls) {
  ParsedReply r = parse_reply("<think>\nneed weather\n</think>\n\nLet me check.\n<tool_call>\n"
                              "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>");
  EXPECT_EQ(r.reasoning, "need weather");
  EXPECT_EQ(r.content, "Let me check.");
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].arguments.at("city"), "Oslo");
  EXPECT_FALSE(r.starts_with_tool_call);  // visible text came first: a "direct" start
}

TEST(ToolCalls, UnclosedThinkKeepsEverythingAsReasoning) {
  ParsedReply r = parse_reply("<think>\nI ran out of tokens");
  EXPECT_EQ(r.reasoning, "I ran out of tokens");
  EXPECT_EQ(r.content, "");
}

TEST(ToolCalls, StartsWithToolCallDecision) {
  EXPECT_TRUE(starts_with_tool_call("<tool_call>\n{}"));
  EXPECT_TRUE(starts_with_tool_call("  \n<tool_call>"));
  EXPECT_TRUE(starts_with_tool_call("<think>\n\n</think>\n\n<tool_call>\n{\"name\": \"f\"}"));
  EXPECT_FALSE(starts_with_tool_call("<think>\nplan\n</think>\n\n<tool_call>"));
  EXPECT_TRUE(starts_with_tool_call("<think>\nplan\n</think>\n\n<tool_call>", /*skip_reasoning=*/true));
  EXPECT_FALSE(starts_with_tool_call("Sure. <tool_call>"));
  EXPECT_FALSE(starts_with_tool_call("<think>\n\n</think>\n\nParis is sunny."));
  EXPECT_FALSE(starts_with_tool_call("<think> never closed <tool_call>"));
  EXPECT_FALSE(starts_with_tool_call(""));
  EXPECT_FALSE(starts_with_tool_call("<tool_"));
}

}  // namespace
}  // namespace quantlab::text
