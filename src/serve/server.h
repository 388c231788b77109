// `quantlab serve`: the engine behind an OpenAI-compatible HTTP API (cpp-httplib), so agents,
// lm-evaluation-harness and any OpenAI client can try a (quantized) model:
//   GET  /health, GET /v1/models, GET /v1/models/{id}
//   POST /v1/chat/completions   messages, tools, tool_choice, sampling, stop, seed, stream (SSE)
//   POST /v1/completions        prompt(s), logprobs (top-k), echo (prompt logprobs)
// One model per server; requests run one at a time in arrival order from a bounded queue (503 with
// Retry-After when it is full); loopback by default; a bearer token when an API key is set; limits on
// body size, message count and max_tokens; every refusal an OpenAI error object naming the field.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "chat/chat_model.h"
#include "serve/request.h"

namespace quantlab::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;             // 0: any free port (bind() says which)
  std::string api_key;         // empty: no authentication
  size_t max_queue = 64;       // requests waiting behind the one in flight
  size_t context = 4096;       // KV-cache positions: prompt + reply
  size_t threads = 0;          // engine threads; 0: one per hardware thread
  size_t max_body_bytes = 8u << 20;
  std::string model_id;        // the id clients name; empty: the model directory's name
  RequestLimits limits;
};

struct ServerStats {
  size_t completed = 0, rejected = 0;
};

class Server {
 public:
  Server(const chat::ChatModel& chat, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket; returns the port. Throws Error(kIo) naming host and port when it cannot.
  int bind();
  // Serves until stop(); returns once the request in flight has been answered.
  void serve();
  // Thread-safe, idempotent: refuses new requests (503), drops the waiting ones (503), lets the one in
  // flight finish, then makes serve() return.
  void stop();

  const std::string& model_id() const;
  ServerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace quantlab::serve
