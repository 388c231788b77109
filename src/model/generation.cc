#include "model/generation.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"

namespace quantlab::model {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json read_json(const fs::path& path) {
  try {
    return json::parse(read_text_file(path.string()));
  } catch (const json::parse_error& e) {
    fail_input("{}: not valid JSON: {}", path.string(), e.what());
  }
}

std::vector<int32_t> eos_ids(const json& j, const fs::path& path) {
  std::vector<int32_t> ids;
  if (!j.is_object() || !j.contains("eos_token_id") || j["eos_token_id"].is_null()) return ids;
  const json& e = j["eos_token_id"];
  auto add = [&](const json& v) {
    if (!v.is_number_integer()) fail_input("{}: eos_token_id must hold integers, got {}", path.string(), v.dump());
    ids.push_back(v.get<int32_t>());
  };
  if (e.is_array()) for (const json& v : e) add(v);
  else add(e);
  return ids;
}

// tokenizer_config.json names the eos token by its text; tokenizer.json's added tokens give its id.
std::vector<int32_t> tokenizer_eos(const fs::path& dir) {
  const fs::path config_path = dir / "tokenizer_config.json", tokenizer_path = dir / "tokenizer.json";
  if (!fs::exists(config_path) || !fs::exists(tokenizer_path)) return {};
  const json config = read_json(config_path);
  if (!config.contains("eos_token")) return {};
  const json& eos = config["eos_token"];
  const json text = eos.is_object() ? eos.value("content", json()) : eos;
  if (!text.is_string()) return {};
  const json tokenizer = read_json(tokenizer_path);
  for (const json& t : tokenizer.value("added_tokens", json::array()))
    if (t.value("content", "") == text.get<std::string>() && t.contains("id")) return {t["id"].get<int32_t>()};
  return {};
}

}  // namespace

std::vector<int32_t> load_stop_tokens(const std::string& dir, const io::ModelConfig& config) {
  const fs::path gen = fs::path(dir) / "generation_config.json";
  if (fs::exists(gen)) {
    std::vector<int32_t> ids = eos_ids(read_json(gen), gen);
    if (!ids.empty()) return ids;
  }
  if (!config.eos_token_ids.empty()) {
    std::vector<int32_t> ids;
    for (int64_t id : config.eos_token_ids) ids.push_back(static_cast<int32_t>(id));
    return ids;
  }
  return tokenizer_eos(dir);
}

std::string_view stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::kStopToken: return "stop_token";
    case StopReason::kMaxTokens: return "max_tokens";
    case StopReason::kContextFull: return "context_full";
    case StopReason::kStoppedByCaller: return "stopped_by_caller";
  }
  return "?";
}

GenerationResult generate(Session& session, std::span<const int32_t> prompt, const GenerationOptions& options,
                          const std::function<bool(int32_t)>& on_token) {
  if (prompt.empty()) fail(ErrorKind::kUsage, "the prompt has no tokens");
  Sampler sampler(options.sampling);
  GenerationResult result;
  const auto start = std::chrono::steady_clock::now();
  std::vector<float> logits = session.forward(prompt);
  while (result.tokens.size() < options.max_tokens) {
    int32_t next;
    {
      ScopedPhase phase(session.timings(), Phase::kSample);
      next = sampler.sample(logits);
    }
    if (result.tokens.empty())
      result.first_token_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.tokens.push_back(next);
    const bool keep_going = !on_token || on_token(next);
    if (std::find(options.stop_tokens.begin(), options.stop_tokens.end(), next) != options.stop_tokens.end()) {
      result.reason = StopReason::kStopToken;
      return result;
    }
    if (!keep_going) {
      result.reason = StopReason::kStoppedByCaller;
      return result;
    }
    if (result.tokens.size() == options.max_tokens) break;
    if (session.position() >= session.max_context()) {
      result.reason = StopReason::kContextFull;
      return result;
    }
    logits = session.forward(std::span<const int32_t>(&next, 1));
  }
  result.reason = StopReason::kMaxTokens;
  return result;
}

}  // namespace quantlab::model
