// The server over real HTTP on loopback, on the bundled fused model: tool calls and direct answers,
// streaming that reassembles to the plain reply, completion logprobs equal to the engine's own
// log-softmax, the API key, bad requests answered 4xx with the field named while the server keeps
// serving, and the queue's bound.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <thread>

#include "chat/chat_model.h"
#include "model/session.h"
#include "core/error.h"
#include "serve/openai_client.h"
#include "serve/server.h"
#include "test_support.h"

namespace quantlab::serve {
namespace {

using ojson = nlohmann::ordered_json;
namespace tc = testing::tool_calling;

ojson read_json(const std::string& path) {
  std::ifstream in(path);
  return ojson::parse(in);
}

// The first dev40 query of each kind, with the suite's tools.
ojson query_messages(bool tool) {
  std::ifstream in(tc::kDev40);
  std::string line;
  while (std::getline(in, line)) {
    const ojson q = ojson::parse(line);
    if ((q["expected"] == "tool") == tool) return q["messages"];
  }
  return {};
}

// A server on a free loopback port, serving in a thread of its own.
class LiveServer {
 public:
  explicit LiveServer(const chat::ChatModel& chat, ServerOptions options = {}) {
    options.port = 0;
    options.threads = 2;
    options.context = 1024;
    server_ = std::make_unique<Server>(chat, options);
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->serve(); });
  }
  ~LiveServer() {
    server_->stop();
    thread_.join();
  }
  httplib::Client client(const std::string& key = "") const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(120, 0);
    if (!key.empty()) c.set_bearer_token_auth(key);
    return c;
  }
  Server& server() { return *server_; }

 private:
  std::unique_ptr<Server> server_;
  int port_ = 0;
  std::thread thread_;
};

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { chat_ = chat::ChatModel::open(tc::kFused).release(); }
  static void TearDownTestSuite() { delete chat_; }
  static chat::ChatModel* chat_;

  static ojson chat_body(bool tool, bool stream = false) {
    return {{"model", "dense-fused-strong-f16"}, {"messages", query_messages(tool)}, {"tools", read_json(tc::kTools)},
            {"temperature", 0}, {"max_tokens", 48}, {"stream", stream}};
  }
};
chat::ChatModel* ServerTest::chat_ = nullptr;

ojson post(httplib::Client& c, const std::string& path, const ojson& body, int expected_status = 200) {
  const httplib::Result r = c.Post(path, body.dump(), "application/json");
  EXPECT_TRUE(r) << "no response from " << path;
  if (!r) return {};
  EXPECT_EQ(r->status, expected_status) << r->body;
  return ojson::parse(r->body);
}

TEST_F(ServerTest, ToolQueryGetsToolCallsAndDirectQueryGetsContent) {
  LiveServer live(*chat_);
  httplib::Client c = live.client();
  const ojson tool = post(c, "/v1/chat/completions", chat_body(true));
  const ojson& choice = tool["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  ASSERT_TRUE(choice["message"]["tool_calls"].is_array());
  EXPECT_EQ(choice["message"]["tool_calls"][0]["function"]["name"], "get_time");  // dev40's first tool query
  EXPECT_TRUE(ojson::parse(choice["message"]["tool_calls"][0]["function"]["arguments"].get<std::string>()).is_object());
  const ojson direct = post(c, "/v1/chat/completions", chat_body(false));
  EXPECT_EQ(direct["choices"][0]["finish_reason"], "stop");
  EXPECT_FALSE(direct["choices"][0]["message"].contains("tool_calls"));
  EXPECT_NE(direct["choices"][0]["message"]["content"].get<std::string>().find("24"), std::string::npos);
  EXPECT_GT(direct["usage"]["prompt_tokens"].get<int>(), 0);
  EXPECT_EQ(direct["usage"]["total_tokens"].get<int>(),
            direct["usage"]["prompt_tokens"].get<int>() + direct["usage"]["completion_tokens"].get<int>());
  const ojson models = ojson::parse(c.Get("/v1/models")->body);
  EXPECT_EQ(models["data"][0]["id"], "dense-fused-strong-f16");
}

// Joins a stream's chunks into the message a non-streamed reply carries.
ojson reassemble(const std::string& sse, ojson& usage, bool& done) {
  ojson message = {{"role", "assistant"}};
  std::string content;
  ojson calls = ojson::array();
  std::string finish;
  size_t pos = 0;
  while ((pos = sse.find("data: ", pos)) != std::string::npos) {
    const size_t end = sse.find("\n\n", pos);
    const std::string data = sse.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    const ojson chunk = ojson::parse(data);
    if (chunk.contains("usage")) usage = chunk["usage"];
    for (const ojson& choice : chunk["choices"]) {
      const ojson& delta = choice["delta"];
      if (delta.contains("content")) content += delta["content"].get<std::string>();
      if (delta.contains("tool_calls"))
        for (ojson call : delta["tool_calls"]) {
          call.erase("index");
          calls.push_back(call);
        }
      if (!choice["finish_reason"].is_null()) finish = choice["finish_reason"];
    }
  }
  message["content"] = content.empty() && !calls.empty() ? ojson() : ojson(content);
  if (!calls.empty()) message["tool_calls"] = calls;
  return {{"message", message}, {"finish_reason", finish}};
}

TEST_F(ServerTest, StreamedChunksReassembleToThePlainReply) {
  LiveServer live(*chat_);
  httplib::Client c = live.client();
  for (bool tool : {false, true}) {
    const ojson plain = post(c, "/v1/chat/completions", chat_body(tool));
    ojson body = chat_body(tool, true);
    body["stream_options"] = {{"include_usage", true}};
    const httplib::Result r = c.Post("/v1/chat/completions", body.dump(), "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
    ojson usage;
    bool done = false;
    const ojson streamed = reassemble(r->body, usage, done);
    EXPECT_TRUE(done) << "no [DONE]";
    ojson expected = plain["choices"][0]["message"];
    // Call ids carry the request id, which differs between the two requests.
    if (expected.contains("tool_calls"))
      for (size_t i = 0; i < expected["tool_calls"].size(); ++i)
        expected["tool_calls"][i]["id"] = streamed["message"]["tool_calls"][i]["id"];
    EXPECT_EQ(streamed["message"], expected) << r->body;
    EXPECT_EQ(streamed["finish_reason"], plain["choices"][0]["finish_reason"]);
    EXPECT_EQ(usage, plain["usage"]);
    if (!tool) {
      EXPECT_GT(std::count(r->body.begin(), r->body.end(), '\n'), 8) << "not streamed piece by piece";
    }
  }
}

// log-softmax of one row, in double.
double log_prob(std::span<const float> row, int32_t id) {
  double max = -INFINITY, sum = 0;
  for (float x : row) max = std::max(max, static_cast<double>(x));
  for (float x : row) sum += std::exp(static_cast<double>(x) - max);
  return row[static_cast<size_t>(id)] - max - std::log(sum);
}

TEST_F(ServerTest, CompletionLogprobsAreTheEnginesLogSoftmax) {
  LiveServer live(*chat_);
  httplib::Client c = live.client();
  const std::string prompt = "The capital of France is";
  const ojson reply = post(c, "/v1/completions", {{"prompt", prompt}, {"max_tokens", 4}, {"temperature", 0},
                                                  {"logprobs", 3}, {"echo", true}});
  const ojson& lp = reply["choices"][0]["logprobs"];
  const std::vector<int32_t> ids = chat_->tokenizer().encode(prompt);
  ASSERT_EQ(lp["tokens"].size(), ids.size() + 4);
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  // The reference: the engine's greedy continuation, then one forward pass of prompt and reply with
  // every position's logits.
  ThreadPool pool(2);
  const size_t vocab = static_cast<size_t>(chat_->config().vocab_size);
  std::vector<int32_t> all = ids;
  {
    model::Session greedy(chat_->model(), pool, {.max_context = 64});
    std::vector<float> last = greedy.forward(ids);
    for (int step = 0; step < 4; ++step) {
      all.push_back(static_cast<int32_t>(std::max_element(last.begin(), last.end()) - last.begin()));
      last = greedy.forward(std::span(all).last(1));
    }
  }
  for (size_t i = 0; i < all.size(); ++i)
    EXPECT_EQ(lp["tokens"][i].get<std::string>(), chat_->tokenizer().token_bytes(all[i])) << "token " << i;
  model::Session session(chat_->model(), pool, {.max_context = 64});
  const std::vector<float> logits = session.forward(all, /*all_logits=*/true);
  for (size_t i = 1; i < all.size(); ++i) {
    const std::span<const float> row = std::span(logits).subspan((i - 1) * vocab, vocab);
    EXPECT_NEAR(lp["token_logprobs"][i].get<double>(), log_prob(row, all[i]), 1e-5) << "token " << i;
    ASSERT_EQ(lp["top_logprobs"][i].size(), 3u);
    if (i >= ids.size()) {  // a greedy token is its position's most likely one
      EXPECT_EQ(lp["top_logprobs"][i].begin().key(), lp["tokens"][i].get<std::string>());
    }
  }
  EXPECT_EQ(reply["choices"][0]["text"].get<std::string>().rfind(prompt, 0), 0u) << "echo puts the prompt first";
  // Token ids as the prompt, and no generation (how lm-evaluation-harness scores likelihoods).
  const ojson scored = post(c, "/v1/completions", {{"prompt", all}, {"max_tokens", 0}, {"logprobs", 0}, {"echo", true}});
  EXPECT_EQ(scored["choices"][0]["logprobs"]["token_logprobs"], ojson(lp["token_logprobs"]));
}

TEST_F(ServerTest, ApiKeyIsRequiredWhenSet) {
  ServerOptions options;
  options.api_key = "sesame";
  LiveServer live(*chat_, options);
  httplib::Client none = live.client(), wrong = live.client("open"), right = live.client("sesame");
  const ojson body = {{"prompt", "Hi"}, {"max_tokens", 1}};
  EXPECT_EQ(post(none, "/v1/completions", body, 401)["error"]["code"], "invalid_api_key");
  EXPECT_EQ(post(wrong, "/v1/completions", body, 401)["error"]["code"], "invalid_api_key");
  EXPECT_EQ(wrong.Get("/v1/models")->status, 401);
  post(right, "/v1/completions", body, 200);
  EXPECT_EQ(none.Get("/health")->status, 200);  // health checks need no key
}

TEST_F(ServerTest, BadRequestsAre4xxNamingTheFieldAndTheServerGoesOn) {
  ServerOptions options;
  options.max_body_bytes = 64 * 1024;
  options.limits.max_messages = 4;
  LiveServer live(*chat_, options);
  httplib::Client c = live.client();
  const auto refused = [&](const std::string& body, int status) {
    const httplib::Result r = c.Post("/v1/chat/completions", body, "application/json");
    EXPECT_TRUE(r);
    if (!r) return ojson();
    EXPECT_EQ(r->status, status) << body.substr(0, 200);
    const ojson j = ojson::parse(r->body);
    EXPECT_TRUE(j["error"]["message"].is_string());
    return j["error"]["param"];
  };
  EXPECT_TRUE(refused("{\"messages\": [", 400).is_null());  // malformed JSON: no field to name
  EXPECT_EQ(refused(R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": "ten"})", 400), "max_tokens");
  EXPECT_EQ(refused(R"({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]})", 400),
            "tools[0].function.name");
  ojson many = {{"messages", ojson::array()}};
  for (int i = 0; i < 5; ++i) many["messages"].push_back({{"role", "user"}, {"content", "hi"}});
  EXPECT_EQ(refused(many.dump(), 400), "messages");
  EXPECT_EQ(refused(R"({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]})", 404), "model");
  EXPECT_EQ(refused(R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1020})", 400), "max_tokens");
  refused(R"({"messages": [{"role": "user", "content": ")" + std::string(100 * 1024, 'a') + "\"}]}", 413);
  EXPECT_EQ(c.Get("/v1/chat/completions")->status, 404);
  // Still serving.
  const ojson ok = post(c, "/v1/chat/completions", {{"messages", query_messages(false)}, {"max_tokens", 4}, {"temperature", 0}});
  EXPECT_EQ(ok["choices"][0]["message"]["role"], "assistant");
}

TEST_F(ServerTest, QueueRefusesOnlyBeyondItsBound) {
  ServerOptions options;
  options.max_queue = 1;
  LiveServer live(*chat_, options);
  const ojson body = {{"prompt", "Count:"}, {"max_tokens", 40}, {"temperature", 0}};
  std::vector<int> status(6, 0);
  std::vector<std::string> retry_after(6);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < status.size(); ++i)
    clients.emplace_back([&, i] {
      httplib::Client c = live.client();
      const httplib::Result r = c.Post("/v1/completions", body.dump(), "application/json");
      if (!r) return;
      status[i] = r->status;
      retry_after[i] = r->get_header_value("Retry-After");
    });
  for (std::thread& t : clients) t.join();
  size_t ok = 0, busy = 0;
  for (size_t i = 0; i < status.size(); ++i) {
    if (status[i] == 200) ++ok;
    if (status[i] == 503) {
      ++busy;
      EXPECT_EQ(retry_after[i], "1");
    }
  }
  EXPECT_EQ(ok + busy, status.size());
  EXPECT_GE(ok, 2u);  // the one in flight and the one waiting at least
  EXPECT_GE(busy, 1u);
  EXPECT_EQ(live.server().stats().rejected, busy);
}

// A stand-in server that refuses with 503 (Retry-After: 0) `refusals` times, then answers a chat
// completion; the client must retry through the refusals, and give up with an I/O error after its
// attempts.
TEST(OpenAiClient, RetriesBusyServersAndNamesTheOnesThatKeepRefusing) {
  for (const int refusals : {2, 100}) {
    httplib::Server stub;
    std::atomic<int> seen{0};
    stub.Post("/v1/chat/completions", [&](const httplib::Request&, httplib::Response& res) {
      if (seen.fetch_add(1) < refusals) {
        res.status = 503;
        res.set_header("Retry-After", "0");
        res.set_content(R"({"error": {"message": "busy"}})", "application/json");
        return;
      }
      res.set_content(R"({"choices": [{"message": {"role": "assistant", "content": "hi"}}]})", "application/json");
    });
    const int port = stub.bind_to_any_port("127.0.0.1");
    std::thread serving([&] { stub.listen_after_bind(); });
    const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/v1";
    OpenAiClient client(parse_remote_endpoint(url), "", {.attempts = 4, .first_wait_seconds = 0.01, .max_wait_seconds = 0.02});
    if (refusals == 2) {
      const Exchange e = client.chat({{"messages", ojson::array()}});
      EXPECT_EQ(e.retries, 2);
      EXPECT_EQ(reply_text(e.response["choices"][0]["message"]), "hi");
    } else {
      try {
        (void)client.chat({{"messages", ojson::array()}});
        ADD_FAILURE() << "a server that keeps refusing must be an error";
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kIo);
        EXPECT_NE(std::string(e.what()).find(url + "/chat/completions: the server refused 4 times (HTTP 503: busy)"),
                  std::string::npos)
            << e.what();
      }
    }
    stub.stop();
    serving.join();
  }
}

TEST(OpenAiClient, EndpointsAndRepliesAsTheModelWritesThem) {
  const RemoteEndpoint e = parse_remote_endpoint("https://gpu-host:8000/v1/#fused@/models/q8");
  EXPECT_EQ(e.origin, "https://gpu-host:8000");
  EXPECT_EQ(e.prefix, "/v1");
  EXPECT_EQ(e.model_id, "fused");
  EXPECT_EQ(e.dir, "/models/q8");
  EXPECT_EQ(parse_remote_endpoint("http://[::1]:8080").prefix, "/v1");
  EXPECT_THROW(parse_remote_endpoint("http://host:80:80/v1"), Error);
  EXPECT_THROW(parse_remote_endpoint("http://host/v1#"), Error);
  const ojson message = ojson::parse(R"({"content": null, "tool_calls": [{"function": {"name": "get_time",
      "arguments": "{\"city\":\"Rome\",\"n\":[1,2]}"}}]})");
  EXPECT_EQ(reply_text(message), "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"city\": \"Rome\", \"n\": [1, 2]}}\n</tool_call>");
}

}  // namespace
}  // namespace quantlab::serve
