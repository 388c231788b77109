#include "serve/server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>

#include "core/error.h"
#include "serve/api_error.h"
#include "serve/engine.h"
#include "serve/event_channel.h"
#include "serve/request_queue.h"
#include "serve/response.h"

namespace quantlab::serve {

using ojson = nlohmann::ordered_json;

namespace {

int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string default_model_id(const std::string& dir) {
  std::filesystem::path p(dir);
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

ApiError queue_full(size_t max_queue) {
  return ApiError(503, "server_error", "",
                  fmt::format("the server is busy: {} requests are already waiting (--max-queue); retry later", max_queue),
                  "queue_full");
}

ApiError shutting_down() {
  return ApiError(503, "server_error", "", "the server is shutting down", "shutting_down");
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status();
  if (e.status() == 503) res.set_header("Retry-After", "1");
  res.set_content(dump(e.to_json()), "application/json");
}

}  // namespace

struct Server::Impl {
  Impl(const chat::ChatModel& chat, ServerOptions o)
      : options(std::move(o)),
        model_id(options.model_id.empty() ? default_model_id(chat.dir()) : options.model_id),
        engine(chat, options.threads, options.context),
        queue(options.max_queue),
        created(unix_seconds()) {
    (void)chat.chat_template();  // loaded now: request threads render concurrently
    options.limits.max_tokens = std::min(options.limits.max_tokens, options.context);
  }

  ServerOptions options;
  std::string model_id;
  Engine engine;
  RequestQueue queue;
  int64_t created;
  std::atomic<uint64_t> next_request{1};
  std::once_flag stop_once;
  httplib::Server http;

  ResponseHeader header(const char* prefix) {
    return {fmt::format("{}-{}", prefix, next_request.fetch_add(1)), model_id, unix_seconds()};
  }

  void check_model(const std::string& requested) const {
    if (!requested.empty() && requested != model_id)
      throw ApiError(404, "invalid_request_error", "model",
                     fmt::format("the model '{}' does not exist; this server serves '{}'", requested, model_id),
                     "model_not_found");
  }

  // Runs fn on the worker thread in arrival order and waits for its result.
  template <typename T>
  T run_queued(std::function<T()> fn) {
    auto promise = std::make_shared<std::promise<T>>();
    std::future<T> result = promise->get_future();
    RequestQueue::Job job{[promise, fn] {
                            try {
                              promise->set_value(fn());
                            } catch (...) {
                              promise->set_exception(std::current_exception());
                            }
                          },
                          [promise] { promise->set_exception(std::make_exception_ptr(shutting_down())); }};
    if (!queue.try_push(std::move(job))) throw queue_full(options.max_queue);
    return result.get();
  }

  void chat_completions(const httplib::Request& req, httplib::Response& res);
  void stream_chat(const PreparedChat& prepared, bool include_usage, httplib::Response& res);
  void completions(const httplib::Request& req, httplib::Response& res);
  void install_routes();
  bool authorized(const httplib::Request& req, httplib::Response& res) const;
};

void Server::Impl::chat_completions(const httplib::Request& req, httplib::Response& res) {
  const ChatRequestFields fields = parse_chat_request(parse_body(req.body), options.limits);
  check_model(fields.model);
  const auto prepare_start = std::chrono::steady_clock::now();
  const PreparedChat prepared = engine.prepare_chat(fields);
  const double prepare_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - prepare_start).count();
  if (fields.stream) return stream_chat(prepared, fields.include_usage, res);
  const ResponseHeader h = header("chatcmpl");
  const ChatReply reply = run_queued<ChatReply>([&] { return engine.run_chat(prepared); });
  // Where the time went, for benchmarks: the chat template and tokenizer, and the model itself.
  res.set_header("X-Quantlab-Prepare-Seconds", fmt::format("{:.6f}", prepare_seconds));
  res.set_header("X-Quantlab-Engine-Seconds", fmt::format("{:.6f}", reply.seconds));
  res.set_content(dump(chat_completion_json(h, reply)), "application/json");
}

void Server::Impl::stream_chat(const PreparedChat& prepared, bool include_usage, httplib::Response& res) {
  auto channel = std::make_shared<EventChannel>();
  const ResponseHeader h = header("chatcmpl");
  RequestQueue::Job job;
  job.run = [this, channel, prepared, include_usage, h] {
    channel->push(sse_event(chat_chunk_json(h, {{"role", "assistant"}, {"content", ""}})));
    try {
      const ChatReply reply = engine.run_chat(prepared, [&](const std::string& piece) {
        return channel->push(sse_event(chat_chunk_json(h, {{"content", piece}})));
      });
      if (!reply.reasoning.empty()) channel->push(sse_event(chat_chunk_json(h, {{"reasoning_content", reply.reasoning}})));
      if (!reply.tool_calls.empty()) {
        ojson calls = tool_calls_json(reply.tool_calls, h.id);
        for (size_t i = 0; i < calls.size(); ++i) calls[i]["index"] = i;
        channel->push(sse_event(chat_chunk_json(h, {{"tool_calls", calls}})));
      }
      channel->push(sse_event(chat_chunk_json(h, ojson::object(), reply.finish_reason)));
      if (include_usage) channel->push(sse_event(usage_chunk_json(h, reply)));
    } catch (const std::exception& e) {
      channel->push(sse_event(ApiError(500, "server_error", "", e.what()).to_json()));
    }
    channel->push("data: [DONE]\n\n");
    channel->close();
  };
  job.cancel = [channel] {
    channel->push(sse_event(shutting_down().to_json()));
    channel->close();
  };
  if (!queue.try_push(std::move(job))) throw queue_full(options.max_queue);
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [channel](size_t, httplib::DataSink& sink) {
    std::string event;
    while (channel->pop(event)) {
      if (!sink.write(event.data(), event.size())) {
        channel->abandon();  // the client went away: the engine stops at its next token
        return false;
      }
    }
    sink.done();
    return true;
  });
}

void Server::Impl::completions(const httplib::Request& req, httplib::Response& res) {
  const CompletionRequestFields fields = parse_completion_request(parse_body(req.body), options.limits);
  check_model(fields.model);
  std::vector<PreparedCompletion> prepared;
  for (const Prompt& p : fields.prompts) prepared.push_back(engine.prepare_completion(p, fields));
  const ResponseHeader h = header("cmpl");
  const std::vector<CompletionReply> replies = run_queued<std::vector<CompletionReply>>([&] {
    std::vector<CompletionReply> out;
    for (const PreparedCompletion& p : prepared) out.push_back(engine.run_completion(p));
    return out;
  });
  ojson choices = ojson::array();
  size_t prompt_tokens = 0, completion_tokens = 0;
  for (size_t i = 0; i < replies.size(); ++i) {
    choices.push_back(completion_choice_json(i, replies[i], fields.logprobs.has_value(), engine.chat().tokenizer()));
    prompt_tokens += replies[i].prompt_tokens;
    completion_tokens += replies[i].completion_tokens;
  }
  const ojson body = {{"id", h.id},           {"object", "text_completion"}, {"created", h.created},
                      {"model", h.model},     {"choices", choices},          {"usage", usage_json(prompt_tokens, completion_tokens)}};
  res.set_content(dump(body), "application/json");
}

bool Server::Impl::authorized(const httplib::Request& req, httplib::Response& res) const {
  if (options.api_key.empty() || !req.path.starts_with("/v1/")) return true;
  if (req.get_header_value("Authorization") == "Bearer " + options.api_key) return true;
  const bool missing = !req.has_header("Authorization");
  send_error(res, ApiError(401, "invalid_request_error", "",
                           missing ? "no API key: send the header 'Authorization: Bearer KEY'" : "the API key is wrong",
                           "invalid_api_key"));
  return false;
}

namespace {

// Every handler's refusals become OpenAI error objects; a quantlab::Error from a lower layer is the
// request's fault when it is about input, the server's otherwise.
httplib::Server::Handler guarded(std::function<void(const httplib::Request&, httplib::Response&)> handler) {
  return [handler](const httplib::Request& req, httplib::Response& res) {
    try {
      handler(req, res);
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const Error& e) {
      const bool client = e.kind() == ErrorKind::kUsage || e.kind() == ErrorKind::kInvalidInput ||
                          e.kind() == ErrorKind::kUnsupported;
      send_error(res, ApiError(client ? 400 : 500, client ? "invalid_request_error" : "server_error", "", e.what()));
    } catch (const std::exception& e) {
      send_error(res, ApiError(500, "server_error", "", e.what()));
    }
  };
}

}  // namespace

void Server::Impl::install_routes() {
  const size_t connections = std::min<size_t>(options.max_queue + 4, 512);
  http.new_task_queue = [connections] { return new httplib::ThreadPool(connections); };
  http.set_payload_max_length(options.max_body_bytes);
  http.set_keep_alive_max_count(1000);
  http.set_tcp_nodelay(true);  // a streamed chunk goes out when written, not when Nagle allows
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    return authorized(req, res) ? httplib::Server::HandlerResponse::Unhandled : httplib::Server::HandlerResponse::Handled;
  });
  http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(dump(models_json(model_id, created)), "application/json");
  });
  http.Get(R"(/v1/models/(.+))", guarded([this](const httplib::Request& req, httplib::Response& res) {
    check_model(req.matches[1]);
    res.set_content(dump(models_json(model_id, created)["data"][0]), "application/json");
  }));
  http.Post("/v1/chat/completions", guarded([this](const auto& req, auto& res) { chat_completions(req, res); }));
  http.Post("/v1/completions", guarded([this](const auto& req, auto& res) { completions(req, res); }));
  // httplib's own refusals (no route, body too large, a request it cannot parse) get an error object too.
  http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string message = fmt::format("HTTP {}", res.status);
    if (res.status == 404) message = fmt::format("no route {} {}", req.method, req.path);
    if (res.status == 413)
      message = fmt::format("the request body is larger than this server's limit of {} bytes", options.max_body_bytes);
    const int status = res.status;
    send_error(res, ApiError(status, "invalid_request_error", "", message));
    return httplib::Server::HandlerResponse::Handled;
  }));
}

Server::Server(const chat::ChatModel& chat, ServerOptions options) : impl_(std::make_unique<Impl>(chat, std::move(options))) {
  impl_->install_routes();
}

Server::~Server() { stop(); }

int Server::bind() {
  const ServerOptions& o = impl_->options;
  const int port = o.port == 0 ? impl_->http.bind_to_any_port(o.host) : (impl_->http.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port < 0) fail(ErrorKind::kIo, "cannot listen on {}:{} (the port is in use, or the host is not an address of this machine)", o.host, o.port);
  return port;
}

void Server::serve() {
  if (!impl_->http.listen_after_bind() && impl_->http.is_running())
    fail(ErrorKind::kIo, "the server stopped listening on {}:{}", impl_->options.host, impl_->options.port);
}

void Server::stop() {
  std::call_once(impl_->stop_once, [this] {
    impl_->queue.close();  // the request in flight finishes; the waiting ones are answered 503
    impl_->http.stop();
  });
}

const std::string& Server::model_id() const { return impl_->model_id; }

ServerStats Server::stats() const { return {impl_->queue.completed(), impl_->queue.rejected()}; }

}  // namespace quantlab::serve
