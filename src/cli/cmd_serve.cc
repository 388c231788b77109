// quantlab serve MODEL [--host 127.0.0.1] [--port 8080] [--threads N] [--api-key KEY] [--max-queue N]
//                [--ctx N] [--served-model-name ID] [--max-body-bytes N] [--max-messages N]
//                [--max-tokens-limit N]
// Serves the model through an OpenAI-compatible HTTP API (serve/server.h, docs/serve.md). Prints one
// line when it listens; SIGTERM or SIGINT finishes the request in flight and exits 0.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

#include "chat/chat_model.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "serve/server.h"

namespace quantlab::cli {

namespace {

struct ServeArgs {
  std::string model;
  serve::ServerOptions options;
  kernels::Compute compute = kernels::Compute::kExact;
};

void run_serve(ServeArgs a) {
  if (a.options.api_key.empty())
    if (const char* key = std::getenv("QUANTLAB_API_KEY"); key && *key) a.options.api_key = key;
  const std::unique_ptr<chat::ChatModel> chat = chat::ChatModel::open(a.model, a.compute);
  (void)chat->tokenizer();  // a model without tokenizer.json cannot serve text: refused before listening
  serve::Server server(*chat, a.options);
  const int port = server.bind();
  set_graceful_stop([&server](const char* signal) {
    fmt::print(stderr, "quantlab serve: {}: finishing the request in flight, then stopping\n", signal);
    server.stop();
  });
  fmt::print("quantlab serve: '{}' on http://{}:{}/v1 (context {}, queue {}{})\n", server.model_id(), a.options.host,
             port, a.options.context, a.options.max_queue, a.options.api_key.empty() ? "" : ", API key required");
  std::fflush(stdout);
  server.serve();
  set_graceful_stop({});
  const serve::ServerStats stats = server.stats();
  fmt::print(stderr, "quantlab serve: stopped after {} requests ({} refused with the queue full)\n", stats.completed,
             stats.rejected);
}

}  // namespace

void register_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  serve::ServerOptions& o = a->options;
  auto* cmd = app.add_subcommand("serve", "Serve a model through an OpenAI-compatible HTTP API (chat, tools, streaming, logprobs)");
  cmd->add_option("model", a->model, "Model directory (float or MLX-quantized, with tokenizer and chat template)")->required();
  cmd->add_option("--host", o.host, "Address to listen on (loopback by default; 0.0.0.0 for every interface)");
  cmd->add_option("--port", o.port, "Port to listen on (0: any free port, printed at start)")->check(CLI::Range(0, 65535));
  add_threads_option(cmd, &o.threads);
  add_compute_option(cmd, &a->compute);
  cmd->add_option("--api-key", o.api_key,
                  "Require 'Authorization: Bearer KEY' on /v1/ routes (or set QUANTLAB_API_KEY, which keeps it out of ps)");
  cmd->add_option("--max-queue", o.max_queue, "Requests that may wait behind the one in flight; more get 503")
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--ctx", o.context, "Context positions per request, prompt and reply (the KV cache's size)")
      ->check(CLI::Range(16, 1 << 20));
  cmd->add_option("--served-model-name", o.model_id, "The model id clients name (default: the directory's name)");
  cmd->add_option("--max-body-bytes", o.max_body_bytes, "Largest request body accepted (413 beyond)")
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30));
  cmd->add_option("--max-messages", o.limits.max_messages, "Most messages in one chat request")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--max-tokens-limit", o.limits.max_tokens, "Most tokens one request may ask to generate")
      ->check(CLI::Range(1, 1 << 20));
  cmd->callback([a] { run_serve(*a); });
}

}  // namespace quantlab::cli
