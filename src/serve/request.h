// The requests the server accepts, parsed and checked field by field. Every refusal is an ApiError
// (400) naming the field, so a client sees which part of its request was wrong. Fields quantlab does
// not know are ignored, as OpenAI's API and vLLM do (clients send many); known fields of the wrong type
// or out of range, and options quantlab cannot honour (n > 1, penalties, chat logprobs), are refused
// rather than silently ignored.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace quantlab::serve {

// Bounds a request must stay within (the server's flags).
struct RequestLimits {
  size_t max_messages = 256;
  size_t max_tokens = 4096;  // the most tokens one request may ask to generate
  size_t max_stop = 4;       // OpenAI's limit on stop strings
  size_t max_prompts = 64;   // prompts in one /v1/completions request
  size_t max_top_logprobs = 20;
};

// Sampling and stopping, shared by both endpoints.
struct DecodeSettings {
  std::optional<size_t> max_tokens;  // nullopt: the endpoint's default
  float temperature = 1.0f;
  float top_p = 1.0f;
  uint64_t seed = 0;
  std::vector<std::string> stop;
};

struct ChatRequestFields {
  std::string model;                              // "" when the client gave none
  nlohmann::ordered_json messages;                // as the chat template expects them
  std::optional<nlohmann::ordered_json> tools;    // nullopt: none, or tool_choice "none"
  DecodeSettings decode;
  bool stream = false;
  bool include_usage = false;                     // stream_options.include_usage
  nlohmann::ordered_json template_kwargs = nlohmann::ordered_json::object();  // chat_template_kwargs
};

using Prompt = std::variant<std::string, std::vector<int32_t>>;

struct CompletionRequestFields {
  std::string model;
  std::vector<Prompt> prompts;
  DecodeSettings decode;
  std::optional<size_t> logprobs;  // top-k alternatives per token (0: only the chosen token's)
  bool echo = false;               // return the prompt (and its tokens' logprobs) before the reply
};

ChatRequestFields parse_chat_request(const nlohmann::ordered_json& body, const RequestLimits& limits);
CompletionRequestFields parse_completion_request(const nlohmann::ordered_json& body, const RequestLimits& limits);

// The body as JSON; a body that does not parse, or is not an object, is a 400 saying where.
nlohmann::ordered_json parse_body(const std::string& body);

}  // namespace quantlab::serve
