#include "bench/worker.h"

#include <algorithm>
#include <exception>
#include <optional>

#include "bench/memory_probe.h"
#include "bench/page_cache.h"
#include "bench/plan_prediction.h"
#include "bench/process.h"
#include "bench/suite_runner.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "eval/report_json_reader.h"
#include "chat/chat_model.h"
#include "quant/model_summary.h"

namespace quantlab::bench {

using ojson = nlohmann::ordered_json;

ojson to_json(const WorkerSpec& s) {
  return {{"name", s.name},
          {"model_dir", s.model_dir},
          {"compute", s.compute},
          {"suite", s.suite},
          {"tools", s.tools},
          {"max_tokens", s.max_tokens},
          {"runs", s.runs},
          {"threads", s.threads},
          {"thinking", s.thinking},
          {"load_only", s.load_only},
          {"spawn_ns", s.spawn_ns},
          {"resident_fraction_before", s.resident_fraction_before}};
}

WorkerSpec worker_spec_from_json(const std::string& text) {
  const ojson j = ojson::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail(ErrorKind::kUsage, "bench-worker: the spec is not valid JSON");
  try {
    const eval::JsonReader r(j, "bench-worker spec");
    WorkerSpec s;
    s.name = r.str("name");
    s.model_dir = r.str("model_dir");
    s.compute = kernels::compute_name(kernels::parse_compute(r.str("compute")));
    s.suite = r.str("suite");
    s.tools = r.str("tools");
    s.max_tokens = r.count("max_tokens");
    s.runs = r.count("runs");
    s.threads = r.count("threads");
    s.thinking = r.flag("thinking");
    s.load_only = r.flag("load_only");
    s.spawn_ns = static_cast<int64_t>(r.count("spawn_ns"));
    s.resident_fraction_before = r.num("resident_fraction_before");
    return s;
  } catch (const Error& e) {
    fail(ErrorKind::kUsage, "{}", e.what());
  }
}

namespace {

struct LoadedModel {
  std::unique_ptr<chat::ChatModel> chat;
  std::unique_ptr<ThreadPool> pool;
};

// Everything a first token needs, timed phase by phase from the parent's spawn. The chat layer opens
// the directory once: config.json and every safetensors header are read here and nowhere else.
LoadedModel load_model(const WorkerSpec& spec, eval::LoadResult& load) {
  const int64_t entry = monotonic_ns();
  const int64_t spawn = spec.spawn_ns > 0 ? spec.spawn_ns : entry;
  load.process_start_seconds = seconds_between(spawn, entry);
  LoadedModel loaded{chat::ChatModel::open(spec.model_dir, kernels::parse_compute(spec.compute)), nullptr};
  load.model_seconds = loaded.chat->open_timings().model_seconds;
  const int64_t template_start = monotonic_ns();
  loaded.chat->chat_template();  // the suite renders with it; load it inside the timed text phase
  const int64_t text_done = monotonic_ns();
  load.text_seconds = loaded.chat->open_timings().text_seconds + seconds_between(template_start, text_done);
  // "First token ready": the thread pool up and one forward pass of a single token through every
  // layer, in a session of its own (the suite's session is sized once the prompts are known).
  loaded.pool = std::make_unique<ThreadPool>(spec.threads);
  model::Session probe(loaded.chat->model(), *loaded.pool, {.max_context = 1});
  const int32_t first_id = 0;
  probe.forward(std::span<const int32_t>(&first_id, 1));
  const int64_t ready = monotonic_ns();
  load.first_forward_seconds = seconds_between(text_done, ready);
  load.seconds = seconds_between(spawn, ready);
  load.resident_fraction_before = spec.resident_fraction_before;
  load.cache_state = cache_state_label(spec.resident_fraction_before);
  return loaded;
}

eval::ModelInfo model_info(const chat::ChatModel& chat) {
  eval::ModelInfo info = model_info_of(quant::summarize_model(chat.dir(), chat.config(), chat.weights()));
  info.experts = chat.model().dims().experts;
  return info;
}

eval::MemoryResult memory_of(const model::Session& session) {
  const model::MemoryReport m = session.memory();
  const ProcessMemory p = read_process_memory();
  return {p.peak_rss,         p.rss_file,       p.rss_anon, m.weights_mapped,
          m.weights_resident, m.weights_copied, m.kv_cache, m.scratch};
}

// The runtime the plan models, set to what this worker's suite session had: its context limit, its
// largest prefill batch and its thread count.
quant::RuntimeAssumptions runtime_of(const SuiteRunner& runner, const ThreadPool& pool) {
  quant::RuntimeAssumptions r;
  r.context = static_cast<int64_t>(runner.session().max_context());
  r.prefill_chunk = static_cast<int64_t>(
      std::clamp<size_t>(runner.longest_prompt(), 1, model::SessionOptions{}.prefill_chunk));
  r.threads = pool.size();
  return r;
}

}  // namespace

eval::ModelInfo model_info_of(const quant::ModelSummary& s) {
  eval::ModelInfo info;
  info.architecture = s.architecture;
  info.quantized = s.quantized;
  if (s.global_quant) info.bits = s.global_quant->bits, info.group_size = s.global_quant->group_size;
  info.params = s.params;
  info.bits_per_weight = s.bits_per_weight;
  info.disk_bytes = s.disk_bytes;
  return info;
}

eval::ModelResult run_worker(const WorkerSpec& spec) {
  eval::ModelResult r;
  r.name = spec.name;
  r.dir = spec.model_dir;
  r.compute = spec.compute;
  const LoadedModel loaded = load_model(spec, r.load);
  r.ok = true;
  if (spec.load_only) return r;

  const eval::ToolSet tools = eval::load_tools(spec.tools);
  const eval::Suite suite = eval::load_suite(spec.suite, &tools);
  SuiteRunner runner(*loaded.chat, *loaded.pool, {spec.max_tokens, spec.runs, spec.thinking});
  SuiteOutcome outcome = runner.run(suite, tools, spec.name);
  r.queries = std::move(outcome.queries);
  r.speed = std::move(outcome.speed);
  r.harness = outcome.harness;
  std::vector<eval::QueryScore> scores;
  for (const eval::QueryResult& q : r.queries) scores.push_back(q.score);
  r.accuracy = eval::summarize_scores(suite.queries, scores);
  r.memory = memory_of(runner.session());
  r.info = model_info(*loaded.chat);
  PlanOutcome plan =
      predict_as_benched(loaded.chat->config(), loaded.chat->weights(), runtime_of(runner, *loaded.pool));
  r.plan = std::move(plan.plan);
  r.plan_warning = std::move(plan.warning);
  return r;
}

eval::ModelResult run_worker_reporting_failure(const WorkerSpec& spec) {
  try {
    return run_worker(spec);
  } catch (const std::exception& e) {
    eval::ModelResult r;
    r.name = spec.name;
    r.dir = spec.model_dir;
    r.ok = false;
    r.error = e.what();
    return r;
  }
}

}  // namespace quantlab::bench
