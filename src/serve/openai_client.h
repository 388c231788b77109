// The client side of the OpenAI-compatible API: what `bench --model NAME=URL[#MODEL_ID][@DIR]` uses to
// run its suite against any server that speaks it (quantlab serve, mlx_lm.server, llama-server, vLLM,
// SGLang). Retries with backoff on 429 and 503 (honouring Retry-After); a server that does not answer
// is an I/O error naming the URL.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

namespace quantlab::serve {

struct RemoteEndpoint {
  std::string url;       // as given: http://host:port/v1
  std::string origin;    // scheme://host:port
  std::string prefix;    // the API's path ("/v1" when the URL gives none)
  std::string model_id;  // after '#': the id to send; empty: the server's first model
  std::string dir;       // after '@': the model's directory, for disk and planned memory
};

// True for a spec that names a server (http:// or https://) rather than a directory.
bool is_remote_spec(const std::string& spec);
// Parses URL[#MODEL_ID][@DIR]; Error(kUsage) naming the spec when the URL is not http(s)://host[:port][/path].
RemoteEndpoint parse_remote_endpoint(const std::string& spec);

struct RetryPolicy {
  int attempts = 8;              // tries of one request on 429/503
  double first_wait_seconds = 0.25;  // doubled after each refusal, at most max_wait_seconds
  double max_wait_seconds = 8;
  double timeout_seconds = 600;  // for one response
};

struct Exchange {
  nlohmann::ordered_json response;
  double seconds = 0;  // the successful attempt's latency, request sent to response read
  int retries = 0;     // refusals (429/503) before it
};

class OpenAiClient {
 public:
  // api_key empty: no Authorization header.
  OpenAiClient(RemoteEndpoint endpoint, std::string api_key, RetryPolicy retry = {});
  ~OpenAiClient();

  const RemoteEndpoint& endpoint() const { return endpoint_; }
  // GET {prefix}/models: the ids the server lists.
  std::vector<std::string> model_ids();
  // POST {prefix}/chat/completions. Throws Error: kIo when the server does not answer or keeps
  // refusing, kInvalidInput with the server's message on any other error status or a body that is not
  // a chat completion.
  Exchange chat(const nlohmann::ordered_json& body);

 private:
  Exchange send(const std::string& method, const std::string& path, const std::string& body);

  RemoteEndpoint endpoint_;
  std::string api_key_;
  RetryPolicy retry_;
};

// A chat completion's message as the model's own text (Qwen/Hermes format): the content, then each
// tool call as a <tool_call>{"name": …, "arguments": …}</tool_call> block, so a remote reply is scored
// exactly like a local one. A server that does not parse tool calls leaves them in the content.
std::string reply_text(const nlohmann::ordered_json& message);

}  // namespace quantlab::serve
