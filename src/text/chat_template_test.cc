// ChatTemplate against transformers' own renderings (tests/data/tokenizers/golden/
// chat-template-golden.json, transformers 5.17 apply_chat_template with the real Qwen3 template) and
// the model-spec §4.7 cases, plus template selection and error reporting.
#include "text/chat_template.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "text/tokenizer.h"

namespace quantlab::text {
namespace {

using json = nlohmann::ordered_json;
const std::string kData = QUANTLAB_TEST_DATA;

json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  return json::parse(in);
}

// Turns a golden case's `args` (apply_chat_template keyword arguments) into a request.
ChatRequest request_from_args(const json& args) {
  ChatRequest request;
  request.messages = args.at("messages");
  request.add_generation_prompt = args.value("add_generation_prompt", false);
  if (args.contains("tools")) request.tools = args.at("tools");
  for (const auto& [key, value] : args.items()) {
    if (key != "messages" && key != "tools" && key != "add_generation_prompt") request.extra[key] = value;
  }
  return request;
}

const json& golden() {
  static const json data = read_json(kData + "/tokenizers/golden/chat-template-golden.json");
  return data;
}

TEST(ChatTemplateGolden, EveryCaseRendersByteForByte) {
  ChatTemplate qwen3 = ChatTemplate::from_model_dir(kData + "/tokenizers/qwen3");
  ASSERT_EQ(golden().at("cases").size(), 8u);
  for (const auto& [name, c] : golden().at("cases").items()) {
    SCOPED_TRACE(name);
    EXPECT_EQ(qwen3.render(request_from_args(c.at("args"))), c.at("text").get<std::string>());
  }
}

TEST(ChatTemplateGolden, ToolCallingModelTemplateRendersTheSame) {
  ChatTemplate tool_model = ChatTemplate::from_model_dir(kData + "/tool-calling");
  for (const auto& [name, c] : golden().at("cases").items()) {
    SCOPED_TRACE(name);
    EXPECT_EQ(tool_model.render(request_from_args(c.at("args"))), c.at("text").get<std::string>());
  }
}

TEST(ChatTemplateGolden, RenderingsTokenizeToTheRecordedIds) {
  ChatTemplate qwen3 = ChatTemplate::from_model_dir(kData + "/tokenizers/qwen3");
  Tokenizer tokenizer = Tokenizer::from_file(kData + "/tokenizers/qwen3/tokenizer.json");
  for (const auto& [name, c] : golden().at("cases").items()) {
    SCOPED_TRACE(name);
    std::vector<int32_t> expected = c.at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(tokenizer.encode(qwen3.render(request_from_args(c.at("args")))), expected);
  }
}

// model-spec §4.7: the tool and user message used in cases (i)-(v).
json spec_tool() {
  return json::parse(R"({"type":"function","function":{"name":"get_weather","description":"Get the current weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name"}},"required":["city"]}}})");
}

ChatRequest spec_user_request() {
  ChatRequest r;
  r.messages = json::parse(R"([{"role":"user","content":"What is the weather in Paris?"}])");
  return r;
}

TEST(ChatTemplateSpec, GenerationPromptAndThinkingSwitch) {
  ChatTemplate qwen3 = ChatTemplate::from_model_dir(kData + "/tokenizers/qwen3");
  ChatRequest r = spec_user_request();
  const std::string base = "<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(qwen3.render(r), base);  // (i)
  r.extra["enable_thinking"] = false;
  EXPECT_EQ(qwen3.render(r), base + "<think>\n\n</think>\n\n");  // (ii)
  r.extra["enable_thinking"] = true;
  EXPECT_EQ(qwen3.render(r), base);
  r.add_generation_prompt = false;
  EXPECT_EQ(qwen3.render(r), "<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n");
}

TEST(ChatTemplateSpec, ToolsSystemTurnAndIds) {
  ChatTemplate qwen3 = ChatTemplate::from_model_dir(kData + "/tokenizers/qwen3");
  ChatRequest r = spec_user_request();
  r.tools = json::array({spec_tool()});
  std::string text = qwen3.render(r);  // (iii)
  EXPECT_EQ(text,
            "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou "
            "are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{\"type\": "
            "\"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get the current weather for a "
            "city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", "
            "\"description\": \"City name\"}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function call, "
            "return a json object with function name and arguments within <tool_call></tool_call> XML "
            "tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
            "<args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nWhat is the weather in "
            "Paris?<|im_end|>\n<|im_start|>assistant\n");
  Tokenizer tokenizer = Tokenizer::from_file(kData + "/tokenizers/qwen3/tokenizer.json");
  std::vector<int32_t> ids = tokenizer.encode(text);
  EXPECT_EQ(ids.size(), 162u);
  std::vector<int32_t> head = {151644, 8948, 198, 2, 13852, 271, 2610, 1231, 1618, 825, 476};
  EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + 11), head);
}

TEST(ChatTemplateSpec, EarlierReasoningIsStrippedFromHistory) {
  ChatTemplate qwen3 = ChatTemplate::from_model_dir(kData + "/tokenizers/qwen3");
  ChatRequest r;  // (iv)
  r.messages = json::parse(R"([{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hi"},
    {"role":"assistant","content":"<think>\nhmm\n</think>\n\nHello!"},{"role":"user","content":"Bye"}])");
  EXPECT_EQ(qwen3.render(r),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>"
            "assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateSpec, ToolRoundTripWithObjectOrStringArguments) {
  ChatTemplate qwen3 = ChatTemplate::from_model_dir(kData + "/tokenizers/qwen3");
  const std::string expected_tail =
      "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": "
      "\"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n"
      "<tool_response>\n{\"temp_c\": 18}\n</tool_response><|im_end|>\n<|im_start|>assistant\n";
  for (const char* arguments : {R"({"city":"Paris"})", R"("{\"city\": \"Paris\"}")"}) {
    SCOPED_TRACE(arguments);
    ChatRequest r;  // (v)
    r.tools = json::array({spec_tool()});
    r.messages = json::array();
    r.messages.push_back({{"role", "user"}, {"content", "Weather in Paris?"}});
    json call = {{"function", {{"name", "get_weather"}, {"arguments", json::parse(arguments)}}}};
    r.messages.push_back({{"role", "assistant"}, {"content", ""}, {"tool_calls", json::array({call})}});
    r.messages.push_back({{"role", "tool"}, {"content", "{\"temp_c\": 18}"}});
    std::string text = qwen3.render(r);
    ASSERT_GE(text.size(), expected_tail.size());
    EXPECT_EQ(text.substr(text.size() - expected_tail.size()), expected_tail);
    EXPECT_EQ(text.rfind("<|im_start|>system\n# Tools", 0), 0u);
  }
}

TEST(ChatTemplateSpec, ReasoningContentFieldIsReemittedAfterTheLastQuery) {
  ChatTemplate qwen3 = ChatTemplate::from_model_dir(kData + "/tokenizers/qwen3");
  ChatRequest r;
  r.add_generation_prompt = false;
  r.messages = json::parse(R"([{"role":"user","content":"2+2?"},
    {"role":"assistant","content":"4","reasoning_content":"\nadd them\n"}])");
  EXPECT_EQ(qwen3.render(r),
            "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\nadd them\n</think>\n\n4<|im_end|>\n");
}

TEST(ChatTemplate, SpecialTokensComeFromTheConfig) {
  ChatTemplate qwen3 = ChatTemplate::from_tokenizer_config(kData + "/tokenizers/qwen3/tokenizer_config.json");
  EXPECT_EQ(qwen3.special_tokens().at("eos_token"), "<|im_end|>");
  EXPECT_FALSE(qwen3.special_tokens().contains("bos_token"));  // null in the config: not passed
  EXPECT_EQ(qwen3.special_tokens().at("additional_special_tokens").size(), 13u);
}

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("ql_chat_template_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name) << text;
    return (path_ / name).string();
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

TEST(ChatTemplate, NamedTemplatesPickToolUseOnlyWithTools) {
  TempDir dir;
  dir.write("tokenizer_config.json", R"({"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>",
    "chat_template": [{"name": "default", "template": "D{{ bos_token }}{{ messages|length }}"},
                      {"name": "tool_use", "template": "T{{ tools|length }}{{ eos_token }}"}]})");
  ChatTemplate t = ChatTemplate::from_model_dir(dir.path());
  ChatRequest r;
  r.messages = json::parse(R"([{"role":"user","content":"x"}])");
  EXPECT_EQ(t.render(r), "D<s>1");
  r.tools = json::array({spec_tool(), spec_tool()});
  EXPECT_EQ(t.render(r), "T2</s>");
}

TEST(ChatTemplate, SiblingJinjaFileWinsOverTheConfig) {
  TempDir dir;
  dir.write("tokenizer_config.json", R"({"eos_token": "<eos>", "chat_template": "from config"})");
  dir.write("chat_template.jinja", "{% for m in messages %}[{{ m.content }}]{% endfor %}{{ eos_token }}\n");
  ChatTemplate t = ChatTemplate::from_model_dir(dir.path());
  ChatRequest r;
  r.messages = json::parse(R"([{"role":"user","content":"a"},{"role":"assistant","content":"b"}])");
  EXPECT_EQ(t.render(r), "[a][b]<eos>");  // trailing newline of the file dropped, as Jinja does
}

TEST(ChatTemplate, MissingOrBrokenTemplatesNameTheFile) {
  TempDir dir;
  std::string no_template = dir.write("tokenizer_config.json", R"({"eos_token": "</s>"})");
  try {
    ChatTemplate::from_model_dir(dir.path());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find(no_template), std::string::npos) << e.what();
  }
  dir.write("tokenizer_config.json", "{\"chat_template\": \"line one\\n{% if x %}\\nno end\"}");
  try {
    ChatTemplate::from_model_dir(dir.path());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer_config.json (chat_template):2:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("endif"), std::string::npos) << e.what();
  }
  dir.write("tokenizer_config.json", "{\"chat_template\": ");
  EXPECT_THROW(ChatTemplate::from_model_dir(dir.path()), Error);
}

}  // namespace
}  // namespace quantlab::text
