// The server's parts without a model: request checks name the field, streamed content joins to the
// finished content, the queue refuses beyond its bound, log-probabilities are a log-softmax.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <future>
#include <thread>

#include "serve/api_error.h"
#include "serve/content_stream.h"
#include "serve/engine.h"
#include "serve/request.h"
#include "serve/request_queue.h"

namespace quantlab::serve {
namespace {

using ojson = nlohmann::ordered_json;

// The field an ApiError names for `body`, or "accepted".
std::string refused_field(const std::string& body, bool completion = false) {
  try {
    const ojson j = parse_body(body);
    if (completion) (void)parse_completion_request(j, {});
    else (void)parse_chat_request(j, {});
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400) << body;
    return e.param().empty() ? "(body)" : e.param();
  }
  return "accepted";
}

TEST(Request, RefusalsNameTheField) {
  EXPECT_EQ(refused_field(R"({"messages": [{"role": "user", "content": "hi"}]})"), "accepted");
  EXPECT_EQ(refused_field(R"({"messages": )"), "(body)");
  EXPECT_EQ(refused_field(R"([1, 2])"), "(body)");
  EXPECT_EQ(refused_field(R"({"messages": 1e999})"), "(body)");  // beyond a double: found by fuzzing
  EXPECT_EQ(refused_field(R"({})"), "messages");
  EXPECT_EQ(refused_field(R"({"messages": []})"), "messages");
  EXPECT_EQ(refused_field(R"({"messages": [{"role": "user", "content": "a"}, {"role": 5}]})"), "messages[1].role");
  EXPECT_EQ(refused_field(R"({"messages": [{"role": "wizard", "content": "a"}]})"), "messages[0].role");
  EXPECT_EQ(refused_field(R"({"messages": [{"role": "user", "content": 7}]})"), "messages[0].content");
  EXPECT_EQ(refused_field(R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})"),
            "messages[0].content[0]");
  const std::string hi = R"("messages": [{"role": "user", "content": "hi"}])";
  EXPECT_EQ(refused_field("{" + hi + R"(, "temperature": "hot"})"), "temperature");
  EXPECT_EQ(refused_field("{" + hi + R"(, "temperature": 3})"), "temperature");
  EXPECT_EQ(refused_field("{" + hi + R"(, "top_p": 0})"), "top_p");
  EXPECT_EQ(refused_field("{" + hi + R"(, "max_tokens": 1.5})"), "max_tokens");
  EXPECT_EQ(refused_field("{" + hi + R"(, "max_tokens": 0})"), "max_tokens");
  EXPECT_EQ(refused_field("{" + hi + R"(, "max_tokens": 100000})"), "max_tokens");
  EXPECT_EQ(refused_field("{" + hi + R"(, "stop": [1]})"), "stop[0]");
  EXPECT_EQ(refused_field("{" + hi + R"(, "stop": ["a", "b", "c", "d", "e"]})"), "stop");
  EXPECT_EQ(refused_field("{" + hi + R"(, "stream": "yes"})"), "stream");
  EXPECT_EQ(refused_field("{" + hi + R"(, "n": 2})"), "n");
  EXPECT_EQ(refused_field("{" + hi + R"(, "tools": {}})"), "tools");
  EXPECT_EQ(refused_field("{" + hi + R"(, "tools": [{"type": "function", "function": {}}]})"), "tools[0].function.name");
  EXPECT_EQ(refused_field("{" + hi + R"(, "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"})"),
            "tool_choice");
  EXPECT_EQ(refused_field("{" + hi + R"(, "frequency_penalty": 0.5})"), "frequency_penalty");
  // Unknown fields are ignored, as OpenAI's API does; neutral values of unsupported options pass.
  EXPECT_EQ(refused_field("{" + hi + R"(, "user": "x", "n": 1, "presence_penalty": 0, "logit_bias": {}})"), "accepted");
  EXPECT_EQ(refused_field(R"({"prompt": "a", "logprobs": 21})", true), "logprobs");
  EXPECT_EQ(refused_field(R"({"prompt": [1, -2]})", true), "prompt");
  EXPECT_EQ(refused_field(R"({"prompt": ["a", 3]})", true), "prompt[1]");
  EXPECT_EQ(refused_field(R"({"prompt": "a", "stream": true})", true), "stream");
  EXPECT_EQ(refused_field(R"({"prompt": ["a", [1, 2]], "max_tokens": 0, "echo": true, "logprobs": 5})", true), "accepted");
}

TEST(Request, ReadsWhatTheEngineNeeds) {
  const ojson body = ojson::parse(R"({"model": "m", "messages": [{"role": "developer", "content": [{"type": "text",
      "text": "be "}, {"type": "text", "text": "brief"}]}, {"role": "assistant", "content": null, "tool_calls": []}],
      "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none", "temperature": 0,
      "max_completion_tokens": 7, "stop": "END", "seed": 3, "stream": true, "stream_options": {"include_usage": true}})");
  const ChatRequestFields r = parse_chat_request(body, {});
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.messages[0]["role"], "system");
  EXPECT_EQ(r.messages[0]["content"], "be brief");
  EXPECT_TRUE(r.messages[1]["content"].is_null());
  EXPECT_FALSE(r.tools.has_value());  // tool_choice "none" hides them
  EXPECT_EQ(r.decode.temperature, 0.0f);
  EXPECT_EQ(r.decode.max_tokens, 7u);
  EXPECT_EQ(r.decode.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(r.decode.seed, 3u);
  EXPECT_TRUE(r.stream && r.include_usage);
  const CompletionRequestFields c = parse_completion_request(ojson::parse(R"({"prompt": [[5, 6], "x"]})"), {});
  ASSERT_EQ(c.prompts.size(), 2u);
  EXPECT_EQ(std::get<std::vector<int32_t>>(c.prompts[0]), (std::vector<int32_t>{5, 6}));
  EXPECT_EQ(c.decode.max_tokens, 16u);  // OpenAI's default for completions
  EXPECT_FALSE(c.logprobs.has_value());
}

// Feeds `text` to a ContentStream `step` bytes at a time; returns what was sent.
std::string stream_in_steps(const std::string& text, const std::string& final_content, size_t step, size_t hold = 0,
                            bool opened_think = false) {
  std::string sent;
  ContentStream stream([&](const std::string& piece) { sent += piece; return true; }, hold, opened_think);
  for (size_t n = step; n < text.size() + step; n += step) stream.update(text.substr(0, std::min(n, text.size())));
  stream.finish(final_content);
  return sent;
}

ChatReply reply_of(std::string text) {
  ChatReply reply;
  reply.text = std::move(text);
  return reply;
}

TEST(ContentStream, PiecesJoinToTheFinishedContent) {
  for (size_t step = 1; step <= 5; ++step) {
    ChatReply direct = reply_of("  The answer is 24.\n");
    split_reply(direct, false);
    EXPECT_EQ(stream_in_steps(direct.text, direct.content, step), "The answer is 24.");
    ChatReply call = reply_of("Let me look.\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>\nDone.");
    split_reply(call, false);
    ASSERT_EQ(call.tool_calls.size(), 1u);
    EXPECT_EQ(stream_in_steps(call.text, call.content, step), call.content);
    ChatReply think = reply_of("<think>hmm</think>\n\nYes.");
    split_reply(think, false);
    EXPECT_EQ(think.reasoning, "hmm");
    EXPECT_EQ(stream_in_steps(think.text, think.content, step), "Yes.");
    ChatReply opened = reply_of("still thinking</think>Sure.");
    split_reply(opened, true);
    EXPECT_EQ(opened.reasoning, "still thinking");
    EXPECT_EQ(stream_in_steps(opened.text, opened.content, step, 0, true), "Sure.");
    ChatReply stray = reply_of("Yes</think> and no");  // the prompt opened no think block: plain text
    split_reply(stray, false);
    EXPECT_EQ(stray.content, "Yes</think> and no");
    EXPECT_EQ(stream_in_steps(stray.text, stray.content, step), stray.content);
    ChatReply broken = reply_of("<tool_call>\n{\"name\": \"f\", \"arguments\": \n</tool_call>");
    split_reply(broken, false);
    EXPECT_TRUE(broken.tool_calls.empty());  // a call that does not parse stays text
    EXPECT_EQ(broken.content, "<tool_call>\n{\"name\": \"f\", \"arguments\": \n</tool_call>");
    EXPECT_EQ(stream_in_steps(broken.text, broken.content, step), broken.content);
  }
}

TEST(ContentStream, HoldsBackWhatMayBeAStopString) {
  std::vector<std::string> pieces;
  ContentStream stream([&](const std::string& p) { pieces.push_back(p); return true; }, /*hold_back=*/3, false);
  stream.update("Hello wor");
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_EQ(pieces[0], "Hello");  // " wor" might start "END"'s text... the last 3 bytes are held
  stream.finish("Hello world");
  EXPECT_EQ(pieces.back(), " world");
}

TEST(RequestQueue, RunsInOrderAndRefusesBeyondItsBound) {
  RequestQueue queue(2);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::vector<int> order;
  std::mutex order_mutex;
  std::atomic<int> started{0};
  const auto job = [&](int i) {
    return RequestQueue::Job{[&, i] {
                               ++started;
                               released.wait();
                               std::lock_guard<std::mutex> lock(order_mutex);
                               order.push_back(i);
                             },
                             {}};
  };
  ASSERT_TRUE(queue.try_push(job(0)));
  while (started.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(queue.try_push(job(1)));
  EXPECT_TRUE(queue.try_push(job(2)));
  EXPECT_FALSE(queue.try_push(job(3)));  // two waiting behind the one in flight: full
  EXPECT_EQ(queue.rejected(), 1u);
  release.set_value();
  while (queue.completed() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
  bool cancelled = false;
  std::promise<void> hold;
  std::shared_future<void> held = hold.get_future().share();
  ASSERT_TRUE(queue.try_push({[&] { held.wait(); }, {}}));
  while (queue.waiting() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(queue.try_push({[] { FAIL() << "ran after close"; }, [&] { cancelled = true; }}));
  std::thread closer([&] { queue.close(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  hold.set_value();
  closer.join();
  EXPECT_TRUE(cancelled);
  EXPECT_FALSE(queue.try_push({[] {}, {}}));
}

TEST(TokenLogprob, IsTheLogSoftmaxWithTheMostLikelyFirst) {
  const std::vector<float> logits = {1.0f, 3.0f, -2.0f, 3.0f};
  double z = 0;
  for (float x : logits) z += std::exp(static_cast<double>(x));
  const TokenLogprob t = token_logprob(logits, 2, 3);
  EXPECT_NEAR(*t.logprob, -2.0 - std::log(z), 1e-12);
  ASSERT_EQ(t.top.size(), 3u);
  EXPECT_EQ(t.top[0].first, 1);  // ties: the lower id first
  EXPECT_EQ(t.top[1].first, 3);
  EXPECT_EQ(t.top[2].first, 0);
  EXPECT_NEAR(t.top[2].second, 1.0 - std::log(z), 1e-12);
}

}  // namespace
}  // namespace quantlab::serve
