// Other template families: reconstructions of the Llama 3.1 and Mistral v0.3 tool-calling templates
// (tests/data/templates, see the README there: written from their published structure, not
// downloaded). Expected strings follow each template's own logic and were cross-checked with Python
// Jinja2 3.1.6 configured like transformers.
#include "text/chat_template.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/mapped_file.h"

namespace quantlab::text {
namespace {

using json = nlohmann::ordered_json;
const std::string kTemplates = std::string(QUANTLAB_TEST_DATA) + "/templates/";

ChatTemplate load(const std::string& file, const json& special_tokens) {
  return ChatTemplate::from_source(read_text_file(kTemplates + file), file, special_tokens);
}

ChatTemplate llama() { return load("llama3.1-reconstructed.jinja", {{"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|eot_id|>"}}); }
ChatTemplate mistral() { return load("mistral-v0.3-reconstructed.jinja", {{"bos_token", "<s>"}, {"eos_token", "</s>"}}); }

json weather_tool() {
  return json::parse(R"({"type": "function", "function": {"name": "get_weather", "description": "Get the weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})");
}

const char* kLlamaWeatherJson =
    "{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_weather\",\n        \"description\": "
    "\"Get the weather\",\n        \"parameters\": {\n            \"type\": \"object\",\n            \"properties\": "
    "{\n                \"city\": {\n                    \"type\": \"string\"\n                }\n            },\n"
    "            \"required\": [\n                \"city\"\n            ]\n        }\n    }\n}\n\n";

TEST(Llama31Template, PlainConversationTrimsAndUsesHeaders) {
  ChatRequest r;
  r.messages = json::parse(R"([{"role": "system", "content": "  Be brief.  "}, {"role": "user", "content": "Hi there "}])");
  EXPECT_EQ(llama().render(r),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
            "Today Date: 26 Jul 2024\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi there"
            "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(Llama31Template, ToolsGoIntoTheFirstUserMessageWithIndentedJson) {
  ChatRequest r;
  r.tools = json::array({weather_tool()});
  r.messages = json::parse(R"([{"role": "user", "content": "Weather in Oslo?"}])");
  EXPECT_EQ(llama().render(r),
            std::string("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\n"
                        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
                        "<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please respond with "
                        "a JSON for a function call with its proper arguments that best answers the given prompt.\n\n"
                        "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and "
                        "its value}.Do not use variables.\n\n") +
                kLlamaWeatherJson +
                "Weather in Oslo?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(Llama31Template, ToolCallAndToolResultRoundTrip) {
  ChatRequest r;
  r.tools = json::array({weather_tool()});
  r.extra = {{"tools_in_user_message", false}, {"date_string", "01 Jan 2025"}};
  r.messages = json::parse(R"([{"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
    {"role": "tool", "content": "{\"temp\": 3}"}])");
  std::string text = llama().render(r);
  EXPECT_NE(text.find("Today Date: 01 Jan 2025\n\nYou have access to the following functions."), std::string::npos);
  const std::string tail =
      "<|start_header_id|>user<|end_header_id|>\n\nWeather in Oslo?<|eot_id|><|start_header_id|>assistant"
      "<|end_header_id|>\n\n{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}<|eot_id|>"
      "<|start_header_id|>ipython<|end_header_id|>\n\n\"{\\\"temp\\\": 3}\"<|eot_id|><|start_header_id|>assistant"
      "<|end_header_id|>\n\n";  // a string tool result is `iterable`, so the template JSON-quotes it
  ASSERT_GE(text.size(), tail.size());
  EXPECT_EQ(text.substr(text.size() - tail.size()), tail);
}

TEST(Llama31Template, BuiltinToolsUsePythonTagAndEom) {
  ChatRequest r;
  r.add_generation_prompt = false;
  r.extra = {{"builtin_tools", {"brave_search", "code_interpreter"}}};
  r.messages = json::parse(R"([{"role": "user", "content": "search"},
    {"role": "assistant", "tool_calls": [{"function": {"name": "brave_search", "arguments": {"query": "x y"}}}]}])");
  EXPECT_EQ(llama().render(r),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nTools: brave_search\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user"
            "<|end_header_id|>\n\nsearch<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n<|python_tag|>"
            "brave_search.call(query=\"x y\")<|eom_id|>");
}

TEST(Llama31Template, TwoToolCallsRaiseTheTemplatesException) {
  ChatRequest r;
  r.messages = json::parse(R"([{"role": "user", "content": "a"},
    {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {}}}, {"function": {"name": "g", "arguments": {}}}]}])");
  try {
    llama().render(r);
    FAIL() << "expected raise_exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("This model only supports single tool-calls at once!"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("llama3.1-reconstructed.jinja:71:"), std::string::npos) << e.what();
  }
}

TEST(MistralTemplate, SystemMessageJoinsTheLastUserTurn) {
  ChatRequest r;
  r.messages = json::parse(R"([{"role": "system", "content": "Sys."}, {"role": "user", "content": "Q1"},
    {"role": "assistant", "content": " A1 "}, {"role": "user", "content": "Q2"}])");
  EXPECT_EQ(mistral().render(r), "<s>[INST] Q1[/INST] A1</s>[INST] Sys.\n\nQ2[/INST]");
}

TEST(MistralTemplate, ToolsCallsAndResults) {
  ChatRequest r;
  r.tools = json::array({weather_tool()});
  r.messages = json::parse(R"([{"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "tool_calls": [{"id": "abcDEF123", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
    {"role": "tool", "tool_call_id": "abcDEF123", "content": "{\"temp\": 3}"},
    {"role": "assistant", "content": "3 degrees."}, {"role": "user", "content": "Thanks"}])");
  EXPECT_EQ(mistral().render(r),
            "<s>[INST] Weather in Oslo?[/INST][TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": "
            "\"Oslo\"}, \"id\": \"abcDEF123\"}]</s>[TOOL_RESULTS] {\"content\": {\"temp\": 3}, \"call_id\": "
            "\"abcDEF123\"}[/TOOL_RESULTS] 3 degrees.</s>[AVAILABLE_TOOLS] [{\"type\": \"function\", \"function\": "
            "{\"name\": \"get_weather\", \"description\": \"Get the weather\", \"parameters\": {\"type\": \"object\", "
            "\"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}][/AVAILABLE_TOOLS]"
            "[INST] Thanks[/INST]");
}

TEST(MistralTemplate, ValidationErrorsComeFromTheTemplate) {
  ChatRequest r;
  r.messages = json::parse(R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])");
  EXPECT_THROW(
      {
        try {
          mistral().render(r);
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("conversation roles must alternate"), std::string::npos);
          throw;
        }
      },
      Error);
  r.messages = json::parse(R"([{"role": "user", "content": "a"},
    {"role": "assistant", "tool_calls": [{"id": "short", "function": {"name": "f", "arguments": {}}}]}])");
  EXPECT_THROW(mistral().render(r), Error);
}

}  // namespace
}  // namespace quantlab::text
