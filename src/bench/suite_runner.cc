#include "bench/suite_runner.h"

#include <algorithm>

#include "bench/process.h"
#include "core/error.h"
#include "core/progress.h"
#include "eval/scoring.h"
#include "model/sampler.h"

namespace quantlab::bench {

SuiteRunner::SuiteRunner(const chat::ChatModel& chat, ThreadPool& pool, SuiteOptions options)
    : chat_(chat), pool_(pool), options_(options), tool_call_id_(chat.tokenizer().token_id("<tool_call>")) {
  QL_CHECK(options_.max_tokens > 0 && options_.runs > 0, "max_tokens {} runs {}", options_.max_tokens, options_.runs);
}

std::vector<int32_t> SuiteRunner::render_prompt(const eval::Query& query, const eval::ToolSet& tools) const {
  text::ChatRequest request;
  request.messages = query.messages;
  request.tools = tools.schemas;
  request.add_generation_prompt = true;
  request.extra = {{"enable_thinking", options_.thinking}};
  return chat_.encode_chat(request);
}

// A greedy reply through the chat layer; its logits hook keeps the logits after prefill (the
// first-token margin).
GreedyReply SuiteRunner::generate_greedy(std::span<const int32_t> prompt, bool keep_first_logits) {
  GreedyReply reply;
  chat::DecodeHooks hooks;
  if (keep_first_logits)
    hooks.on_logits = [&](size_t step, std::span<const float> logits) {
      if (step == 0) reply.first_logits.assign(logits.begin(), logits.end());
    };
  const int64_t start = monotonic_ns();
  model::GenerationResult r = chat::respond(*session_, prompt, chat::greedy_options(chat_, options_.max_tokens), hooks);
  reply.seconds = seconds_between(start, monotonic_ns());
  reply.tokens = std::move(r.tokens);
  reply.reason = r.reason;
  return reply;
}

eval::QueryResult SuiteRunner::describe(const eval::Query& query, const eval::ToolSet& tools, const GreedyReply& reply,
                                        size_t prompt_tokens) const {
  eval::QueryResult q;
  q.id = query.id;
  q.line = query.line;
  q.expect_tool = query.expect_tool;
  q.expected_tool = query.tool;
  std::span<const int32_t> text_tokens(reply.tokens);
  if (reply.reason == model::StopReason::kStopToken) text_tokens = text_tokens.first(text_tokens.size() - 1);
  q.reply = chat_.tokenizer().decode(text_tokens);
  q.score = eval::score_reply(query, q.reply, &tools, options_.thinking);
  if (tool_call_id_ && static_cast<size_t>(*tool_call_id_) < reply.first_logits.size()) {
    const eval::FirstTokenMargin m = eval::tool_call_margin(reply.first_logits, *tool_call_id_);
    q.first_token_margin = m.margin;
    q.best_other_token = std::string(chat_.tokenizer().token_string(m.best_other_id));
  }
  q.prompt_tokens = prompt_tokens;
  q.generated_tokens = reply.tokens.size();
  q.stop_reason = std::string(model::stop_reason_name(reply.reason));
  q.seconds = reply.seconds;
  return q;
}

namespace {

eval::SpeedRun speed_run(const model::Timings& before, const model::Timings& after, std::vector<double> query_seconds) {
  eval::SpeedRun run;
  run.prefill_tokens = after.prefill_tokens - before.prefill_tokens;
  run.prefill_seconds = after.prefill_seconds - before.prefill_seconds;
  run.decode_tokens = after.decode_tokens - before.decode_tokens;
  run.decode_seconds = after.decode_seconds - before.decode_seconds;
  const eval::Summary s = eval::summarize(std::move(query_seconds));
  run.mean_query_seconds = s.mean;
  run.median_query_seconds = s.median;
  return run;
}

}  // namespace

SuiteOutcome SuiteRunner::run(const eval::Suite& suite, const eval::ToolSet& tools, const std::string& label) {
  const int64_t start = monotonic_ns();
  std::vector<std::vector<int32_t>> prompts;
  size_t longest = 0;
  for (const eval::Query& q : suite.queries) {
    prompts.push_back(render_prompt(q, tools));
    longest = std::max(longest, prompts.back().size());
  }
  longest_prompt_ = longest;
  // The cache holds one query at a time: sized for the longest prompt and its reply, not the model's
  // whole context, so KV memory reflects what the suite needs.
  session_.emplace(chat_.model(), pool_, model::SessionOptions{.max_context = longest + options_.max_tokens + 1});
  Progress progress("bench " + label, suite.queries.size() * options_.runs, 0, Progress::stderr_is_terminal());
  SuiteOutcome out;
  std::vector<std::vector<int32_t>> first_tokens;
  double model_seconds = 0;
  for (size_t run = 0; run < options_.runs; ++run) {
    const model::Timings before = session_->timings();
    std::vector<double> query_seconds;
    for (size_t i = 0; i < suite.queries.size(); ++i) {
      session_->reset();
      const GreedyReply reply = generate_greedy(prompts[i], run == 0);
      model_seconds += reply.seconds;
      query_seconds.push_back(reply.seconds);
      if (run == 0) {
        out.queries.push_back(describe(suite.queries[i], tools, reply, prompts[i].size()));
        first_tokens.push_back(reply.tokens);
      } else if (reply.tokens != first_tokens[i]) {
        out.speed.replies_identical_across_runs = false;
      }
      progress.advance(1, 0);
    }
    out.speed.runs.push_back(speed_run(before, session_->timings(), std::move(query_seconds)));
  }
  progress.finish();
  out.harness.suite_seconds = seconds_between(start, monotonic_ns());
  out.harness.model_seconds = model_seconds;
  out.harness.harness_seconds = std::max(0.0, out.harness.suite_seconds - model_seconds);
  return out;
}

}  // namespace quantlab::bench
