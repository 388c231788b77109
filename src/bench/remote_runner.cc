#include "bench/remote_runner.h"

#include <fmt/format.h>

#include <cstdlib>

#include "bench/plan_prediction.h"
#include "bench/process.h"
#include "core/error.h"
#include "core/progress.h"
#include "eval/scoring.h"
#include "eval/stats.h"
#include "eval/suite.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "quant/model_summary.h"
#include "serve/openai_client.h"

namespace quantlab::bench {

using ojson = nlohmann::ordered_json;

namespace {

std::string api_key_from_environment() {
  for (const char* name : {"OPENAI_API_KEY", "QUANTLAB_API_KEY"})
    if (const char* key = std::getenv(name); key && *key) return key;
  return "";
}

// The request every server gets for a query: greedy, the suite's tools, thinking as the bench's flag
// says (chat_template_kwargs: vLLM, SGLang, llama-server and quantlab read it).
ojson query_body(const std::string& model_id, const eval::Query& q, const eval::ToolSet& tools, const WorkerSpec& spec) {
  return {{"model", model_id},
          {"messages", q.messages},
          {"tools", tools.schemas},
          {"temperature", 0},
          {"max_tokens", spec.max_tokens},
          {"chat_template_kwargs", {{"enable_thinking", spec.thinking}}}};
}

eval::QueryResult describe(const eval::Query& q, const eval::ToolSet& tools, const serve::Exchange& e, bool thinking) {
  eval::QueryResult r;
  r.id = q.id;
  r.line = q.line;
  r.expect_tool = q.expect_tool;
  r.expected_tool = q.tool;
  const ojson& choice = e.response["choices"][0];
  r.reply = serve::reply_text(choice["message"]);
  r.score = eval::score_reply(q, r.reply, &tools, thinking);
  const ojson usage = e.response.value("usage", ojson::object());
  r.prompt_tokens = usage.value("prompt_tokens", size_t{0});
  r.generated_tokens = usage.value("completion_tokens", size_t{0});
  r.stop_reason = choice.value("finish_reason", ojson("")).is_string() ? choice["finish_reason"].get<std::string>() : "";
  r.seconds = e.seconds;
  return r;
}

// Disk size and the plan's memory of the model the server runs, from its directory.
void describe_directory(const std::string& dir, size_t context, eval::ModelResult& r) {
  const io::ModelConfig config = io::load_model_config(dir);
  const io::ModelWeights weights = io::ModelWeights::open(dir);
  r.info = model_info_of(quant::summarize_model(dir, config, weights));
  quant::RuntimeAssumptions runtime;
  runtime.context = static_cast<int64_t>(context);
  PlanOutcome plan = predict_as_benched(config, weights, runtime);
  r.plan = std::move(plan.plan);
  r.plan_warning = std::move(plan.warning);
  if (r.plan) {
    r.memory.weights_mapped = r.plan->tensor_bytes;
    r.memory.kv_cache = r.plan->kv_cache_bytes;
    r.memory.scratch = r.plan->scratch_bytes;
  }
}

eval::ModelResult run_remote(const std::string& name, const std::string& spec, const WorkerSpec& common) {
  eval::ModelResult r;
  r.name = name;
  r.dir = spec;
  const serve::RemoteEndpoint endpoint = serve::parse_remote_endpoint(spec);
  serve::OpenAiClient client(endpoint, api_key_from_environment());
  std::string model_id = endpoint.model_id;
  if (model_id.empty()) {
    const std::vector<std::string> ids = client.model_ids();
    if (ids.empty()) fail_input("{}: the server lists no models; name one with URL#MODEL_ID", endpoint.url);
    model_id = ids.front();
  }
  const eval::ToolSet tools = eval::load_tools(common.tools);
  const eval::Suite suite = eval::load_suite(common.suite, &tools);
  Progress progress("bench " + name, suite.queries.size() * common.runs, 0, Progress::stderr_is_terminal());
  std::vector<std::string> first_replies;
  const int64_t start = monotonic_ns();
  double model_seconds = 0;
  for (size_t run = 0; run < common.runs; ++run) {
    eval::SpeedRun speed;
    std::vector<double> latencies;
    for (size_t i = 0; i < suite.queries.size(); ++i) {
      const serve::Exchange e = client.chat(query_body(model_id, suite.queries[i], tools, common));
      const eval::QueryResult q = describe(suite.queries[i], tools, e, common.thinking);
      speed.prefill_tokens += q.prompt_tokens;
      speed.decode_tokens += q.generated_tokens;
      speed.decode_seconds += q.seconds;  // latency: the server's prefill and decode, and the network
      latencies.push_back(q.seconds);
      model_seconds += q.seconds;
      if (run == 0) {
        r.queries.push_back(q);
        first_replies.push_back(q.reply);
      } else if (q.reply != first_replies[i]) {
        r.speed.replies_identical_across_runs = false;
      }
      progress.advance(1, 0);
    }
    const eval::Summary s = eval::summarize(latencies);
    speed.mean_query_seconds = s.mean;
    speed.median_query_seconds = s.median;
    r.speed.runs.push_back(speed);
  }
  progress.finish();
  std::vector<eval::QueryScore> scores;
  for (const eval::QueryResult& q : r.queries) scores.push_back(q.score);
  r.accuracy = eval::summarize_scores(suite.queries, scores);
  r.harness.suite_seconds = seconds_between(start, monotonic_ns());
  r.harness.model_seconds = model_seconds;
  r.harness.harness_seconds = std::max(0.0, r.harness.suite_seconds - model_seconds);
  r.info.architecture = "remote: " + model_id;
  r.plan_warning = "a server: no plan without @DIR";
  if (!endpoint.dir.empty()) {
    size_t longest = 0;
    for (const eval::QueryResult& q : r.queries) longest = std::max(longest, q.prompt_tokens);
    describe_directory(endpoint.dir, longest + common.max_tokens + 1, r);
  }
  r.ok = true;
  return r;
}

}  // namespace

eval::ModelResult measure_remote(const std::string& name, const std::string& spec, const WorkerSpec& common) {
  try {
    return run_remote(name, spec, common);
  } catch (const std::exception& e) {
    eval::ModelResult r;
    r.name = name;
    r.dir = spec;
    r.error = e.what();
    return r;
  }
}

}  // namespace quantlab::bench
