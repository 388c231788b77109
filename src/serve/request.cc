#include "serve/request.h"

#include <cmath>
#include <limits>

#include "serve/api_error.h"

namespace quantlab::serve {

using ojson = nlohmann::ordered_json;

namespace {

const char* type_name(const ojson& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

const ojson* field(const ojson& body, const char* name) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

double number_field(const ojson& body, const char* name, double low, double high, double fallback) {
  const ojson* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number()) bad_field(name, "'{}' must be a number, not {}", name, type_name(*v));
  const double x = v->get<double>();
  if (!(x >= low && x <= high)) bad_field(name, "'{}' must be between {} and {} (got {})", name, low, high, x);
  return x;
}

// An integer in [low, high]; floats with no fraction are taken (JavaScript clients send 16.0).
int64_t integer_field(const ojson& body, const char* name, int64_t low, int64_t high, int64_t fallback) {
  const ojson* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number()) bad_field(name, "'{}' must be an integer, not {}", name, type_name(*v));
  const double x = v->get<double>();
  if (v->is_number_float() && x != std::floor(x)) bad_field(name, "'{}' must be an integer (got {})", name, x);
  if (!(x >= static_cast<double>(low) && x <= static_cast<double>(high)))
    bad_field(name, "'{}' must be between {} and {} (got {})", name, low, high, x);
  return v->is_number_unsigned() ? static_cast<int64_t>(v->get<uint64_t>()) : static_cast<int64_t>(x);
}

bool bool_field(const ojson& body, const char* name, bool fallback) {
  const ojson* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_boolean()) bad_field(name, "'{}' must be a boolean, not {}", name, type_name(*v));
  return v->get<bool>();
}

std::string string_field(const ojson& body, const char* name) {
  const ojson* v = field(body, name);
  if (!v) return "";
  if (!v->is_string()) bad_field(name, "'{}' must be a string, not {}", name, type_name(*v));
  return v->get<std::string>();
}

std::vector<std::string> stop_field(const ojson& body, const RequestLimits& limits) {
  const ojson* v = field(body, "stop");
  if (!v) return {};
  if (v->is_string()) return v->get<std::string>().empty() ? std::vector<std::string>{} : std::vector{v->get<std::string>()};
  if (!v->is_array()) bad_field("stop", "'stop' must be a string or an array of strings, not {}", type_name(*v));
  if (v->size() > limits.max_stop) bad_field("stop", "'stop' has {} entries; at most {}", v->size(), limits.max_stop);
  std::vector<std::string> stop;
  for (size_t i = 0; i < v->size(); ++i) {
    const ojson& s = (*v)[i];
    if (!s.is_string()) bad_field(fmt::format("stop[{}]", i), "'stop[{}]' must be a string, not {}", i, type_name(s));
    if (!s.get<std::string>().empty()) stop.push_back(s.get<std::string>());
  }
  return stop;
}

// Options quantlab cannot honour: refused when set to anything but their neutral value.
void refuse_unsupported(const ojson& body) {
  if (integer_field(body, "n", 1, 1 << 20, 1) != 1) bad_field("n", "'n' must be 1: one reply per request");
  for (const char* penalty : {"frequency_penalty", "presence_penalty"})
    if (number_field(body, penalty, -2, 2, 0) != 0) bad_field(penalty, "'{}' is not supported; leave it at 0", penalty);
  if (const ojson* bias = field(body, "logit_bias"); bias && !(bias->is_object() && bias->empty()))
    bad_field("logit_bias", "'logit_bias' is not supported");
}

DecodeSettings decode_settings(const ojson& body, const RequestLimits& limits) {
  DecodeSettings d;
  refuse_unsupported(body);
  d.temperature = static_cast<float>(number_field(body, "temperature", 0, 2, 1));
  d.top_p = static_cast<float>(number_field(body, "top_p", 0, 1, 1));
  if (d.top_p <= 0) bad_field("top_p", "'top_p' must be above 0");
  const int64_t cap = static_cast<int64_t>(limits.max_tokens);
  for (const char* name : {"max_tokens", "max_completion_tokens"})
    if (field(body, name)) d.max_tokens = static_cast<size_t>(integer_field(body, name, 0, cap, 0));
  d.seed = static_cast<uint64_t>(integer_field(body, "seed", std::numeric_limits<int64_t>::min(),
                                               std::numeric_limits<int64_t>::max(), 0));
  d.stop = stop_field(body, limits);
  return d;
}

// A message's content: a string, null (an assistant turn with tool calls), or OpenAI's list of parts,
// of which only text parts can be given to a text model.
ojson message_content(const ojson& content, const std::string& where) {
  if (content.is_null() || content.is_string()) return content;
  if (!content.is_array())
    bad_field(where, "'{}' must be a string, null or an array of text parts, not {}", where, type_name(content));
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const ojson& part = content[i];
    const std::string at = fmt::format("{}[{}]", where, i);
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
      bad_field(at, "'{}' must be {{\"type\": \"text\", \"text\": ...}}: this model reads text only", at);
    text += part["text"].get<std::string>();
  }
  return text;
}

ojson messages_field(const ojson& body, const RequestLimits& limits) {
  const ojson* v = field(body, "messages");
  if (!v) bad_field("messages", "'messages' is required");
  if (!v->is_array() || v->empty()) bad_field("messages", "'messages' must be a non-empty array");
  if (v->size() > limits.max_messages)
    bad_field("messages", "'messages' has {} entries; this server takes at most {}", v->size(), limits.max_messages);
  ojson messages = ojson::array();
  for (size_t i = 0; i < v->size(); ++i) {
    const ojson& m = (*v)[i];
    const std::string at = fmt::format("messages[{}]", i);
    if (!m.is_object()) bad_field(at, "'{}' must be an object, not {}", at, type_name(m));
    const ojson* role = field(m, "role");
    if (!role || !role->is_string()) bad_field(at + ".role", "'{}.role' must be a string", at);
    const std::string r = role->get<std::string>();
    if (r != "system" && r != "developer" && r != "user" && r != "assistant" && r != "tool")
      bad_field(at + ".role", "'{}.role' is '{}'; expected system, developer, user, assistant or tool", at, r);
    ojson message = m;
    message["role"] = r == "developer" ? "system" : r;  // OpenAI's newer name for the system turn
    message["content"] = message_content(m.contains("content") ? m["content"] : ojson(), at + ".content");
    if (message["content"].is_null() && !m.contains("tool_calls")) message["content"] = "";
    if (const ojson* calls = field(m, "tool_calls"); calls && !calls->is_array())
      bad_field(at + ".tool_calls", "'{}.tool_calls' must be an array", at);
    messages.push_back(std::move(message));
  }
  return messages;
}

std::optional<ojson> tools_field(const ojson& body) {
  const ojson* v = field(body, "tools");
  if (!v) return std::nullopt;
  if (!v->is_array()) bad_field("tools", "'tools' must be an array, not {}", type_name(*v));
  for (size_t i = 0; i < v->size(); ++i) {
    const ojson& t = (*v)[i];
    const std::string at = fmt::format("tools[{}]", i);
    if (!t.is_object() || t.value("type", "") != "function")
      bad_field(at + ".type", "'{}' must be an object with \"type\": \"function\"", at);
    const ojson* fn = field(t, "function");
    if (!fn || !fn->is_object() || !fn->contains("name") || !(*fn)["name"].is_string())
      bad_field(at + ".function.name", "'{}.function' must be an object with a string 'name'", at);
  }
  if (v->empty()) return std::nullopt;
  // tool_choice: "auto" passes the tools to the template, "none" hides them (the model answers in text).
  if (const ojson* choice = field(body, "tool_choice")) {
    if (!choice->is_string())
      bad_field("tool_choice", "'tool_choice' must be \"auto\" or \"none\" (forcing a tool is not supported)");
    const std::string c = choice->get<std::string>();
    if (c == "none") return std::nullopt;
    if (c != "auto") bad_field("tool_choice", "'tool_choice' is '{}'; this server supports \"auto\" and \"none\"", c);
  }
  return *v;
}

std::vector<int32_t> token_list(const ojson& v, const std::string& where) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_number_integer() || v[i].get<int64_t>() < 0 || v[i].get<int64_t>() > std::numeric_limits<int32_t>::max())
      bad_field(where, "'{}[{}]' must be a token id (a non-negative integer)", where, i);
    ids.push_back(v[i].get<int32_t>());
  }
  if (ids.empty()) bad_field(where, "'{}' is an empty list of tokens", where);
  return ids;
}

// OpenAI's prompt forms: a string, a list of strings, a list of token ids, a list of lists of ids.
std::vector<Prompt> prompts_field(const ojson& body, const RequestLimits& limits) {
  const ojson* v = field(body, "prompt");
  if (!v) bad_field("prompt", "'prompt' is required");
  if (v->is_string()) return {v->get<std::string>()};
  if (!v->is_array() || v->empty()) bad_field("prompt", "'prompt' must be a string or a non-empty array");
  if ((*v)[0].is_number()) return {token_list(*v, "prompt")};
  if (v->size() > limits.max_prompts)
    bad_field("prompt", "'prompt' has {} prompts; this server takes at most {} per request", v->size(), limits.max_prompts);
  std::vector<Prompt> prompts;
  for (size_t i = 0; i < v->size(); ++i) {
    const ojson& p = (*v)[i];
    const std::string at = fmt::format("prompt[{}]", i);
    if (p.is_string()) prompts.emplace_back(p.get<std::string>());
    else if (p.is_array()) prompts.emplace_back(token_list(p, at));
    else bad_field(at, "'{}' must be a string or a list of token ids, not {}", at, type_name(p));
  }
  return prompts;
}

}  // namespace

ojson parse_body(const std::string& body) {
  ojson j;
  try {
    j = ojson::parse(body);
  } catch (const ojson::exception& e) {  // bad syntax, and numbers beyond a double (out_of_range 406)
    throw ApiError(400, "invalid_request_error", "", fmt::format("the request body is not valid JSON: {}", e.what()));
  }
  if (!j.is_object()) throw ApiError(400, "invalid_request_error", "", "the request body must be a JSON object");
  return j;
}

ChatRequestFields parse_chat_request(const ojson& body, const RequestLimits& limits) {
  ChatRequestFields r;
  r.model = string_field(body, "model");
  r.messages = messages_field(body, limits);
  r.tools = tools_field(body);
  r.decode = decode_settings(body, limits);
  if (r.decode.max_tokens == 0u) bad_field("max_tokens", "'max_tokens' must be at least 1");
  r.stream = bool_field(body, "stream", false);
  if (const ojson* options = field(body, "stream_options")) {
    if (!options->is_object()) bad_field("stream_options", "'stream_options' must be an object");
    r.include_usage = bool_field(*options, "include_usage", false);
  }
  if (bool_field(body, "logprobs", false)) bad_field("logprobs", "chat 'logprobs' is not supported; use /v1/completions");
  if (const ojson* format = field(body, "response_format"); format && !(format->is_object() && format->value("type", "") == "text"))
    bad_field("response_format", "only {{\"type\": \"text\"}} is supported");
  if (const ojson* kwargs = field(body, "chat_template_kwargs")) {
    if (!kwargs->is_object()) bad_field("chat_template_kwargs", "'chat_template_kwargs' must be an object");
    r.template_kwargs = *kwargs;
  }
  return r;
}

CompletionRequestFields parse_completion_request(const ojson& body, const RequestLimits& limits) {
  CompletionRequestFields r;
  r.model = string_field(body, "model");
  r.prompts = prompts_field(body, limits);
  r.decode = decode_settings(body, limits);
  if (!r.decode.max_tokens) r.decode.max_tokens = 16;  // OpenAI's default
  if (bool_field(body, "stream", false)) bad_field("stream", "streaming is supported on /v1/chat/completions only");
  r.echo = bool_field(body, "echo", false);
  if (field(body, "logprobs"))
    r.logprobs = static_cast<size_t>(integer_field(body, "logprobs", 0, static_cast<int64_t>(limits.max_top_logprobs), 0));
  if (integer_field(body, "best_of", 1, 1 << 20, 1) != 1) bad_field("best_of", "'best_of' must be 1");
  if (!string_field(body, "suffix").empty()) bad_field("suffix", "'suffix' is not supported");
  return r;
}

}  // namespace quantlab::serve
