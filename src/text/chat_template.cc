#include "text/chat_template.h"

#include "core/error.h"
#include "core/mapped_file.h"

#include <filesystem>

namespace quantlab::text {
namespace {

using json = nlohmann::ordered_json;

json parse_config(const std::string& path) {
  std::string text = read_text_file(path);
  try {
    json config = json::parse(text);
    if (!config.is_object()) fail_input("{}: expected a JSON object at the top level", path);
    return config;
  } catch (const json::exception& e) {  // bad syntax, and numbers beyond a double (406)
    fail_input("{}: malformed JSON: {}", path, e.what());
  }
}

// A special token is a string or an AddedToken object {"content": "...", ...}; null means unset.
std::optional<std::string> token_text(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string()) {
    return value["content"].get<std::string>();
  }
  return std::nullopt;
}

// transformers passes tokenizer.special_tokens_map to the template: only tokens that are set.
json special_tokens_of(const json& config) {
  json tokens = json::object();
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
    if (auto it = config.find(key); it != config.end()) {
      if (auto text = token_text(*it)) tokens[key] = *text;
    }
  }
  if (auto it = config.find("additional_special_tokens"); it != config.end() && it->is_array() && !it->empty()) {
    json list = json::array();
    for (const auto& item : *it) {
      if (auto text = token_text(item)) list.push_back(*text);
    }
    tokens["additional_special_tokens"] = list;
  }
  return tokens;
}

}  // namespace

ChatTemplate ChatTemplate::from_source(std::string_view source, const std::string& name, const json& special_tokens) {
  ChatTemplate t;
  t.templates_.emplace("default", JinjaTemplate::parse(source, name));
  t.special_tokens_ = special_tokens;
  return t;
}

ChatTemplate ChatTemplate::from_tokenizer_config(const std::string& path) {
  json config = parse_config(path);
  ChatTemplate t;
  t.special_tokens_ = special_tokens_of(config);
  auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) fail_input("{}: no \"chat_template\" in the tokenizer config", path);
  if (it->is_string()) {
    t.templates_.emplace("default", JinjaTemplate::parse(it->get<std::string>(), path + " (chat_template)"));
    return t;
  }
  if (!it->is_array()) fail_input("{}: \"chat_template\" must be a string or a list of {{name, template}}", path);
  for (const auto& entry : *it) {
    if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() || !entry.contains("template") ||
        !entry["template"].is_string()) {
      fail_input("{}: each \"chat_template\" entry needs string fields \"name\" and \"template\"", path);
    }
    std::string name = entry["name"].get<std::string>();
    t.templates_.insert_or_assign(name, JinjaTemplate::parse(entry["template"].get<std::string>(),
                                                             path + " (chat_template '" + name + "')"));
  }
  if (t.templates_.empty()) fail_input("{}: \"chat_template\" is an empty list", path);
  return t;
}

ChatTemplate ChatTemplate::from_model_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string config_path = (fs::path(dir) / "tokenizer_config.json").string();
  const fs::path jinja_path = fs::path(dir) / "chat_template.jinja";
  std::error_code ec;
  if (!fs::exists(jinja_path, ec)) return from_tokenizer_config(config_path);
  // The standalone file wins over any template inside tokenizer_config.json, as in transformers.
  json config = fs::exists(config_path, ec) ? parse_config(config_path) : json::object();
  return from_source(read_text_file(jinja_path.string()), jinja_path.string(), special_tokens_of(config));
}

std::vector<std::string> ChatTemplate::template_names() const {
  std::vector<std::string> names;
  for (const auto& entry : templates_) names.push_back(entry.first);
  return names;
}

const JinjaTemplate& ChatTemplate::select(bool has_tools) const {
  if (has_tools) {
    if (auto it = templates_.find("tool_use"); it != templates_.end()) return it->second;
  }
  if (auto it = templates_.find("default"); it != templates_.end()) return it->second;
  std::string names;
  for (const auto& entry : templates_) names += (names.empty() ? "" : ", ") + entry.first;
  fail_input("no \"default\" chat template among the named templates ({})", names);
}

std::string ChatTemplate::render(const ChatRequest& request) const {
  if (!request.messages.is_array()) fail_input("chat messages must be a JSON list");
  if (request.tools && !request.tools->is_array()) fail_input("chat tools must be a JSON list");
  if (!request.extra.is_object()) fail_input("extra chat template variables must be a JSON object");
  json variables = json::object();
  variables["messages"] = request.messages;
  variables["tools"] = request.tools ? *request.tools : json(nullptr);
  variables["documents"] = nullptr;
  variables["add_generation_prompt"] = request.add_generation_prompt;
  for (const auto& [key, value] : special_tokens_.items()) variables[key] = value;
  for (const auto& [key, value] : request.extra.items()) variables[key] = value;
  return select(request.tools.has_value()).render(variables);
}

}  // namespace quantlab::text
