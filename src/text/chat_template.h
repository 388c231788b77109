// A model's chat template, rendered the way transformers' `apply_chat_template` does.
//
// Sources, in transformers' order of preference: `<model dir>/chat_template.jinja`, then the
// `chat_template` of `tokenizer_config.json` (a string, or a list of {name, template}: "tool_use"
// is taken when tools are given and it exists, otherwise "default").
// Variables the template sees: messages, tools (None when not given), documents (None),
// add_generation_prompt, the special tokens of tokenizer_config (bos_token, eos_token, pad_token,
// unk_token, additional_special_tokens; only those that are set), then the caller's extra variables
// (for example enable_thinking), which win over the rest.
//
// Thread-safety: immutable after construction; render() may run concurrently.
#pragma once

#include "text/jinja/jinja.h"

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>

namespace quantlab::text {

struct ChatRequest {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  std::optional<nlohmann::ordered_json> tools;  // a list of tool schemas, or nullopt for none
  bool add_generation_prompt = true;  // unlike transformers' default: quantlab renders prompts to generate from
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // e.g. {"enable_thinking": false}
};

class ChatTemplate {
 public:
  // Throws Error(kIo) when tokenizer_config.json cannot be read, kInvalidInput (naming the file and
  // line) when it is malformed, has no chat template, or the template does not parse.
  static ChatTemplate from_model_dir(const std::string& dir);
  // From a tokenizer_config.json file alone (no chat_template.jinja lookup).
  static ChatTemplate from_tokenizer_config(const std::string& path);
  // From template text and special tokens given directly (tests, custom templates).
  static ChatTemplate from_source(std::string_view source, const std::string& name,
                                  const nlohmann::ordered_json& special_tokens = nlohmann::ordered_json::object());

  std::string render(const ChatRequest& request) const;

  // The special-token variables passed to every render ({"eos_token": "<|im_end|>", ...}).
  const nlohmann::ordered_json& special_tokens() const { return special_tokens_; }
  // Names of the available templates ("default" for a single string template).
  std::vector<std::string> template_names() const;

 private:
  const JinjaTemplate& select(bool has_tools) const;

  std::map<std::string, JinjaTemplate> templates_;
  nlohmann::ordered_json special_tokens_ = nlohmann::ordered_json::object();
};

}  // namespace quantlab::text
