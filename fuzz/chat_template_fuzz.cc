// A chat template from a stranger (Jinja: parser and renderer) with messages and tools from one too.
// Input: template source, 0x1E, messages JSON, 0x1E, tools JSON. Messages or tools that are not JSON
// fall back to a fixed conversation, so that a fuzzed template still meets real data.
#include "fuzz_support.h"
#include "text/chat_template.h"

namespace {

nlohmann::ordered_json json_or(std::string_view text, const nlohmann::ordered_json& fallback) {
  auto parsed = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  return parsed.is_discarded() ? fallback : parsed;
}

const nlohmann::ordered_json kMessages = nlohmann::ordered_json::parse(R"([
  {"role": "system", "content": "You are helpful."},
  {"role": "user", "content": "Weather in Paris?"},
  {"role": "assistant", "content": "", "tool_calls": [{"type": "function",
    "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
  {"role": "tool", "content": "{\"temp\": 21}"},
  {"role": "assistant", "content": "<think>ok</think>It is 21 degrees."}])");

const nlohmann::ordered_json kTools = nlohmann::ordered_json::parse(R"([{"type": "function", "function":
  {"name": "get_weather", "description": "Weather now", "parameters": {"type": "object",
   "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])");

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace quantlab;
  const auto parts = fuzz::split_parts(data, size, 3);
  fuzz::parses_or_refuses([&] {
    const auto chat = text::ChatTemplate::from_source(
        parts[0], "fuzz.jinja", {{"bos_token", "<s>"}, {"eos_token", "<|im_end|>"}});
    text::ChatRequest request;
    request.messages = json_or(parts[1], kMessages);
    request.tools = json_or(parts[2], kTools);
    request.extra = {{"enable_thinking", false}};
    (void)chat.render(request);
    request.tools.reset();
    request.add_generation_prompt = false;
    (void)chat.render(request);
  });
  return 0;
}
