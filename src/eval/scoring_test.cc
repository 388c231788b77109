#include "eval/scoring.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace quantlab::eval {
namespace {

using ojson = nlohmann::ordered_json;

Query tool_query(const std::string& tool, std::optional<ojson> args = std::nullopt) {
  Query q;
  q.id = "q";
  q.messages = ojson::array({{{"role", "user"}, {"content", "weather?"}}});
  q.expect_tool = true;
  q.tool = tool;
  q.arguments = std::move(args);
  return q;
}

Query direct_query() {
  Query q;
  q.id = "d";
  q.messages = ojson::array({{{"role", "user"}, {"content", "hello"}}});
  return q;
}

std::string call(const std::string& name, const std::string& args_json = "{\"location\": \"Paris\"}") {
  return "<tool_call>\n{\"name\": \"" + name + "\", \"arguments\": " + args_json + "}\n</tool_call>";
}

// Qwen2.5-Instruct replies call tools in the same `<tool_call>` JSON as Qwen3 (its template's own
// instructions, tests/data/templates/qwen2.5-npm): the one parser reads them, several calls included.
TEST(Scoring, ReadsQwen25ToolCalls) {
  const std::string reply =
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\"}}\n</tool_call>\n"
      "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>";
  const QueryScore s = score_reply(tool_query("get_weather", ojson{{"location", "Paris"}}), reply);
  EXPECT_TRUE(s.decided_tool);
  EXPECT_EQ(s.called_tool, "get_weather");
  EXPECT_EQ(s.arguments_correct, true);
  EXPECT_TRUE(s.correct);
}

TEST(Scoring, ToolQueryWithTheRightCallIsCorrect) {
  const QueryScore s = score_reply(tool_query("get_weather"), call("get_weather"));
  EXPECT_TRUE(s.decided_tool);
  EXPECT_TRUE(s.decision_correct);
  EXPECT_EQ(s.called_tool, "get_weather");
  EXPECT_EQ(s.tool_correct, true);
  EXPECT_FALSE(s.arguments_correct.has_value());  // the query gives no arguments
  EXPECT_TRUE(s.correct);
  EXPECT_EQ(s.note, "");
}

TEST(Scoring, WrongToolNameIsWrongButTheDecisionIsRight) {
  const QueryScore s = score_reply(tool_query("get_weather"), call("get_time"));
  EXPECT_TRUE(s.decision_correct);
  EXPECT_EQ(s.tool_correct, false);
  EXPECT_FALSE(s.correct);
}

TEST(Scoring, DirectAnswerToAToolQueryIsWrong) {
  const QueryScore s = score_reply(tool_query("get_weather"), "It is sunny in Paris.");
  EXPECT_FALSE(s.decided_tool);
  EXPECT_FALSE(s.decision_correct);
  EXPECT_FALSE(s.tool_correct.has_value());
  EXPECT_FALSE(s.correct);
}

TEST(Scoring, DirectQueries) {
  EXPECT_TRUE(score_reply(direct_query(), "I am fine, thanks.").correct);
  const QueryScore s = score_reply(direct_query(), call("web_search"));
  EXPECT_TRUE(s.decided_tool);
  EXPECT_FALSE(s.correct);
  EXPECT_EQ(s.called_tool, "web_search");
  EXPECT_FALSE(s.tool_correct.has_value());  // only tool queries check the name
}

TEST(Scoring, TheCallMustComeFirst) {
  // Text before the call: the decision rule says "direct".
  EXPECT_FALSE(score_reply(tool_query("get_weather"), "Let me check. " + call("get_weather")).decided_tool);
  // Whitespace and an empty think block are allowed before it.
  EXPECT_TRUE(score_reply(tool_query("get_weather"), "\n<think>\n\n</think>\n\n" + call("get_weather")).correct);
}

TEST(Scoring, ReasoningIsSkippedOnlyWhenThinkingIsOn) {
  const std::string reply = "<think>The user wants live data.</think>\n" + call("get_weather");
  EXPECT_FALSE(score_reply(tool_query("get_weather"), reply).decided_tool);
  EXPECT_TRUE(score_reply(tool_query("get_weather"), reply, nullptr, /*skip_reasoning=*/true).correct);
}

TEST(Scoring, ArgumentsCompareAsJson) {
  const ojson expected = {{"location", "Paris"}, {"unit", "C"}};
  const Query q = tool_query("get_weather", expected);
  const QueryScore reordered = score_reply(q, call("get_weather", "{\"unit\":\"C\",  \"location\":\"Paris\"}"));
  EXPECT_EQ(reordered.arguments_correct, true);
  EXPECT_TRUE(reordered.correct);
  const QueryScore other = score_reply(q, call("get_weather", "{\"location\": \"Lyon\", \"unit\": \"C\"}"));
  EXPECT_EQ(other.arguments_correct, false);
  EXPECT_EQ(other.tool_correct, true);
  EXPECT_FALSE(other.correct);
}

TEST(Scoring, CutOffCallStillNamesItsToolButNotItsArguments) {
  const std::string cut = "<tool_call>\n{\"name\": \"get_time\", \"argu";
  const QueryScore s = score_reply(tool_query("get_time"), cut);
  EXPECT_TRUE(s.decided_tool);
  EXPECT_EQ(s.called_tool, "get_time");
  EXPECT_TRUE(s.correct);
  EXPECT_NE(s.note.find("unterminated"), std::string::npos) << s.note;
  const QueryScore with_args = score_reply(tool_query("get_time", ojson{{"city", "Oslo"}}), cut);
  EXPECT_EQ(with_args.arguments_correct, false);
  EXPECT_FALSE(with_args.correct);
}

TEST(Scoring, UnknownToolIsNoted) {
  ToolSet tools;
  tools.names = {"get_weather", "get_time"};
  const QueryScore s = score_reply(tool_query("get_weather"), call("launch_rocket"), &tools);
  EXPECT_FALSE(s.correct);
  EXPECT_NE(s.note.find("unknown tool 'launch_rocket'"), std::string::npos) << s.note;
}

TEST(Scoring, LenientToolName) {
  EXPECT_EQ(lenient_tool_name("{\"name\": \"get_stock_price\", \"arguments\": {\"comp"), "get_stock_price");
  EXPECT_EQ(lenient_tool_name("{\"name\":\"a\\\"b\"}"), "a\"b");
  EXPECT_EQ(lenient_tool_name("{\"name\": \"get_sto"), "");  // the name itself is cut off
  EXPECT_EQ(lenient_tool_name("{\"arguments\": {}}"), "");
  EXPECT_EQ(lenient_tool_name("{\"name\" 12}"), "");
}

TEST(Scoring, SummaryCountsEachPartWithWilsonIntervals) {
  const std::vector<Query> queries = {tool_query("get_weather"), tool_query("get_time"), tool_query("get_time"),
                                      direct_query(), direct_query()};
  const std::vector<QueryScore> scores = {
      score_reply(queries[0], call("get_weather")),  // right
      score_reply(queries[1], call("get_weather")),  // right decision, wrong tool
      score_reply(queries[2], "It is noon."),        // wrong decision
      score_reply(queries[3], "Hi!"),                // right
      score_reply(queries[4], call("web_search")),   // wrong decision
  };
  const AccuracySummary a = summarize_scores(queries, scores);
  EXPECT_EQ(a.overall.correct, 2u);
  EXPECT_EQ(a.overall.total, 5u);
  EXPECT_DOUBLE_EQ(a.overall.pct(), 40.0);
  EXPECT_EQ(a.decision.correct, 3u);
  EXPECT_EQ(a.tool_queries.correct, 1u);
  EXPECT_EQ(a.tool_queries.total, 3u);
  EXPECT_EQ(a.direct_queries.correct, 1u);
  EXPECT_EQ(a.direct_queries.total, 2u);
  EXPECT_EQ(a.tool_name.correct, 1u);  // of the two tool queries answered with a call
  EXPECT_EQ(a.tool_name.total, 2u);
  EXPECT_EQ(a.arguments.total, 0u);
  const Interval w = wilson_interval(2, 5);
  EXPECT_DOUBLE_EQ(a.overall.wilson95.low, w.low);
  EXPECT_DOUBLE_EQ(a.overall.wilson95.high, w.high);
  // Known value: 2 of 5 at 95 % is [11.76 %, 76.93 %].
  EXPECT_NEAR(a.overall.wilson95.low, 0.1176, 1e-4);
  EXPECT_NEAR(a.overall.wilson95.high, 0.7693, 1e-4);
}

TEST(Scoring, FirstTokenMargin) {
  const std::vector<float> logits = {1.0f, 5.0f, 3.0f, -2.0f};
  const FirstTokenMargin tool_wins = tool_call_margin(logits, 1);
  EXPECT_DOUBLE_EQ(tool_wins.margin, 2.0);
  EXPECT_EQ(tool_wins.best_other_id, 2);
  const FirstTokenMargin tool_loses = tool_call_margin(logits, 3);
  EXPECT_DOUBLE_EQ(tool_loses.margin, -7.0);
  EXPECT_EQ(tool_loses.best_other_id, 1);
  EXPECT_THROW(tool_call_margin(logits, 4), Error);
}

}  // namespace
}  // namespace quantlab::eval
