// `tokenize` and `chat-template` through the real binary, against the Hugging Face goldens.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_support.h"

namespace quantlab::testing {
namespace {

using ojson = nlohmann::ordered_json;

const std::string kQwen3 = data_path("tokenizers/qwen3");

TEST(TokenizeCli, EncodesAndDecodesLikeTransformers) {
  auto r = run_quantlab("tokenize " + shell_quote(kQwen3) + " --text 'What is the weather in Paris?'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "3838 374 279 9104 304 12095 30\n");
  r = run_quantlab("tokenize " + shell_quote(kQwen3) + " --decode 151644,872,198 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ojson::parse(r.out)["text"], "<|im_start|>user\n");
}

TEST(TokenizeCli, JsonLinesFileStreamsOneResultPerLine) {
  TempDir tmp;
  std::ofstream(tmp / "in.jsonl") << "\"Hello world\"\n\"\\t\\tindent\"\n";
  auto r = run_quantlab("tokenize " + shell_quote(kQwen3) + " --file " + shell_quote(tmp / "in.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"ids\":[9707,1879]}\n{\"ids\":[197,197,32840]}\n");
  std::ofstream(tmp / "bad.jsonl") << "\"ok\"\n{\"not\": \"a string\"}\n";
  r = run_quantlab("tokenize " + shell_quote(kQwen3) + " --file " + shell_quote(tmp / "bad.jsonl"));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("bad.jsonl:2:"), std::string::npos) << r.err;
  r = run_quantlab("tokenize " + shell_quote(kQwen3) + " --text a --decode 1");
  EXPECT_EQ(r.exit_code, 2);
}

TEST(ChatTemplateCli, RendersEveryGoldenCaseByteForByte) {
  const ojson golden = ojson::parse(slurp(data_path("tokenizers/golden/chat-template-golden.json")));
  TempDir tmp;
  size_t checked = 0;
  for (const auto& [name, c] : golden["cases"].items()) {
    const ojson& args = c["args"];
    std::ofstream(tmp / "m.json") << args["messages"].dump();
    std::string cmd = "chat-template " + shell_quote(kQwen3) + " --messages " + shell_quote(tmp / "m.json") + " --json";
    if (args.contains("tools")) {
      std::ofstream(tmp / "t.json") << args["tools"].dump();
      cmd += " --tools " + shell_quote(tmp / "t.json");
    }
    if (args.value("add_generation_prompt", false)) cmd += " --generation-prompt";
    if (args.contains("enable_thinking") && !args["enable_thinking"].get<bool>()) cmd += " --no-thinking";
    const auto r = run_quantlab(cmd);
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    const ojson out = ojson::parse(r.out);
    EXPECT_EQ(out["text"], c["text"]) << name;
    EXPECT_EQ(out["ids"], c["ids"]) << name;
    ++checked;
  }
  EXPECT_EQ(checked, 8u);
}

TEST(ChatTemplateCli, BadMessagesFileIsNamed) {
  TempDir tmp;
  std::ofstream(tmp / "m.json") << "[{\"role\": \"user\", ";
  const auto r = run_quantlab("chat-template " + shell_quote(kQwen3) + " --messages " + shell_quote(tmp / "m.json"));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("m.json"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace quantlab::testing
