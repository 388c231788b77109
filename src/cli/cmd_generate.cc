// quantlab generate MODEL (--ids 1,2,3 | --prompt TEXT) [--max-tokens N] [--temperature T] [--top-p P]
//                  [--top-k K] [--seed S] [--threads N] [--ignore-eos] [--json]
// Runs the model on CPU from its stored (float or quantized) weights. Text output streams the
// generated text (or ids, when the model has no tokenizer.json) to stdout and a speed summary to
// stderr; --json prints one object with tokens, text, stop reason, timings and memory, and for a MoE
// model how many distinct experts the decode steps were routed to in each layer.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "chat/chat_model.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "cli/token_ids.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "eval/stats.h"
#include "kernels/kernels.h"
#include "model/session.h"
#include "text/tokenizer.h"

namespace quantlab::cli {

namespace {

struct GenerateArgs {
  std::string model, ids, prompt;
  size_t max_tokens = 128;
  float temperature = 0.0f, top_p = 1.0f;
  int top_k = 0;
  uint64_t seed = 0;
  size_t threads = 0;
  kernels::Compute compute = kernels::Compute::kExact;
  bool ignore_eos = false, json = false;
};

// The median of the times between consecutive generated tokens: the decode rate without the stalls
// (page faults, a busy core) that the delivered rate, tokens / seconds, includes.
double median_token_seconds(const std::vector<double>& token_times) {
  if (token_times.size() < 2) return 0;
  std::vector<double> gaps;
  for (size_t i = 1; i < token_times.size(); ++i) gaps.push_back(token_times[i] - token_times[i - 1]);
  return eval::summarize(std::move(gaps)).median;
}

// Which experts a MoE model's decode steps were routed to, per layer: how far a decode's expert reads
// are reused across tokens (what its memory traffic depends on beyond the k experts of one token).
struct DecodeRouting {
  size_t prompt_tokens = 0;
  size_t experts = 0, experts_per_token = 0;
  std::map<size_t, std::set<int32_t>> experts_by_layer;
  std::set<size_t> positions;

  void record(const model::RoutingEvent& e) {
    experts = e.experts;
    experts_per_token = e.experts_per_token;
    for (size_t t = 0; t < e.tokens; ++t) {
      if (e.first_position + t < prompt_tokens) continue;  // the prompt's prefill
      positions.insert(e.first_position + t);
      auto& seen = experts_by_layer[e.layer];
      for (size_t j = 0; j < e.experts_per_token; ++j) seen.insert(e.chosen[t * e.experts_per_token + j]);
    }
  }

  nlohmann::ordered_json json() const {
    size_t low = experts, high = 0, sum = 0;
    for (const auto& [layer, seen] : experts_by_layer) {
      low = std::min(low, seen.size());
      high = std::max(high, seen.size());
      sum += seen.size();
    }
    const size_t layers = experts_by_layer.size();
    return {{"moe_layers", layers},
            {"experts", experts},
            {"experts_per_token", experts_per_token},
            {"decode_tokens", positions.size()},
            {"distinct_experts_per_layer",
             {{"mean", layers ? static_cast<double>(sum) / layers : 0.0}, {"min", layers ? low : 0}, {"max", high}}}};
  }
};

nlohmann::ordered_json report_json(const model::Session& session, const model::GenerationResult& r,
                                   double load_seconds, const std::vector<double>& token_times) {
  const model::Timings& t = session.timings();
  nlohmann::ordered_json phases;
  for (size_t p = 0; p < static_cast<size_t>(model::Phase::kCount); ++p)
    phases[std::string(model::phase_name(static_cast<model::Phase>(p)))] = t.phase_seconds[p];
  const model::MemoryReport m = session.memory();
  return {
      {"load_seconds", load_seconds},
      {"first_token_seconds", r.first_token_seconds},
      {"prefill", {{"tokens", t.prefill_tokens}, {"seconds", t.prefill_seconds},
                   {"tokens_per_second", t.prefill_seconds > 0 ? t.prefill_tokens / t.prefill_seconds : 0.0}}},
      {"decode", {{"tokens", t.decode_tokens}, {"seconds", t.decode_seconds},
                  {"tokens_per_second", t.decode_seconds > 0 ? t.decode_tokens / t.decode_seconds : 0.0},
                  {"median_token_seconds", median_token_seconds(token_times)}}},
      {"phases_seconds", phases},
      {"memory_bytes", {{"weights_mapped", m.weights_mapped}, {"weights_resident", m.weights_resident},
                        {"weights_copied", m.weights_copied}, {"kv_cache", m.kv_cache}, {"scratch", m.scratch}}},
      {"kernel_target", kernels::active_target()},
  };
}

void print_summary(const model::Session& session, const model::GenerationResult& r, size_t prompt_tokens,
                   double load_seconds) {
  const model::Timings& t = session.timings();
  const model::MemoryReport m = session.memory();
  fmt::print(stderr, "[{} prompt tokens, {} generated, stop: {}] load {:.3f} s, first token {:.3f} s\n",
             prompt_tokens, r.tokens.size(), model::stop_reason_name(r.reason), load_seconds, r.first_token_seconds);
  if (t.prefill_seconds > 0)
    fmt::print(stderr, "prefill {:.1f} tok/s", t.prefill_tokens / t.prefill_seconds);
  if (t.decode_seconds > 0) fmt::print(stderr, "{}decode {:.1f} tok/s", t.prefill_seconds > 0 ? ", " : "",
                                       t.decode_tokens / t.decode_seconds);
  fmt::print(stderr, "\nmemory: weights {} mapped ({} resident), kv cache {}, scratch {}\n",
             human_bytes(m.weights_mapped), human_bytes(m.weights_resident), human_bytes(m.kv_cache),
             human_bytes(m.scratch));
}

void run_generate(const GenerateArgs& a) {
  if (a.ids.empty() == a.prompt.empty()) fail(ErrorKind::kUsage, "give exactly one of --ids and --prompt");
  const std::unique_ptr<chat::ChatModel> chat = chat::ChatModel::open(a.model, a.compute);
  const double load_seconds = chat->open_timings().model_seconds;
  const text::Tokenizer* tokenizer = chat->has_tokenizer() ? &chat->tokenizer() : nullptr;
  if (!a.prompt.empty() && !tokenizer)
    fail(ErrorKind::kUsage, "--prompt needs {}/tokenizer.json; pass token ids with --ids instead", a.model);
  const std::vector<int32_t> prompt = a.ids.empty() ? tokenizer->encode(a.prompt) : parse_token_ids(a.ids);

  model::GenerationOptions options;
  options.max_tokens = a.max_tokens;
  options.sampling = {a.temperature, a.top_k, a.top_p, a.seed};
  if (!a.ignore_eos) options.stop_tokens = chat->stop_tokens();
  ThreadPool pool(a.threads);
  model::Session session(chat->model(), pool);
  std::vector<double> token_times;  // seconds since start, as each token is chosen
  const auto start = std::chrono::steady_clock::now();
  const auto on_token = [&](int32_t id) {
    token_times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (a.json) return true;
    if (tokenizer) fmt::print("{}", tokenizer->token_bytes(id));
    else fmt::print("{} ", id);
    std::fflush(stdout);
    return true;
  };
  DecodeRouting routing;
  routing.prompt_tokens = prompt.size();
  model::RoutingHook on_routing;
  if (a.json && chat->model().config().is_moe()) on_routing = [&](const model::RoutingEvent& e) { routing.record(e); };
  const model::GenerationResult r =
      chat::respond(session, prompt, options, chat::DecodeHooks{{}, on_routing, on_token, {}});
  if (!a.json) {
    fmt::print("\n");
    std::fflush(stdout);
    print_summary(session, r, prompt.size(), load_seconds);
    return;
  }
  nlohmann::ordered_json j;
  j["model"] = a.model;
  j["compute"] = kernels::compute_name(a.compute);
  j["compute_kernel"] = kernels::compute_kernel(a.compute);
  j["prompt_tokens"] = prompt;
  j["tokens"] = r.tokens;
  if (tokenizer) j["text"] = tokenizer->decode(r.tokens);
  j["stop_reason"] = model::stop_reason_name(r.reason);
  j["stats"] = report_json(session, r, load_seconds, token_times);
  if (on_routing) j["routing"] = routing.json();
  fmt::print("{}\n", j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
}

}  // namespace

void register_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate tokens with a model on CPU (float or MLX-quantized)");
  cmd->add_option("model", a->model, "Model directory")->required();
  auto* ids = cmd->add_option("--ids", a->ids, "Prompt token ids, comma-separated (e.g. 1,2,3)");
  auto* prompt = cmd->add_option("--prompt", a->prompt, "Prompt text (needs tokenizer.json in the model directory)");
  ids->excludes(prompt);
  cmd->add_option("--max-tokens", a->max_tokens, "Most tokens to generate")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--temperature", a->temperature, "Sampling temperature (0 = greedy)")->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-p", a->top_p, "Nucleus sampling mass (1 = off)")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--top-k", a->top_k, "Sample among the K most likely tokens (0 = off)")->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--seed", a->seed, "Random seed for sampling");
  add_threads_option(cmd, &a->threads);
  add_compute_option(cmd, &a->compute);
  cmd->add_flag("--ignore-eos", a->ignore_eos, "Do not stop at the model's stop tokens");
  cmd->add_flag("--json", a->json, "Print one JSON object instead of streaming text");
  cmd->callback([a] { run_generate(*a); });
}

}  // namespace quantlab::cli
