#include "chat/chat_model.h"

#include <chrono>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"

namespace quantlab::chat {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

json read_json(const fs::path& path) {
  try {
    return json::parse(read_text_file(path.string()));
  } catch (const json::exception& e) {  // bad syntax, and numbers beyond a double (406)
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

// tokenizer_config.json names the eos token by its text; the tokenizer gives its id.
std::vector<int32_t> tokenizer_eos(const fs::path& dir, const text::Tokenizer* tokenizer) {
  const fs::path config_path = dir / "tokenizer_config.json";
  if (!tokenizer || !fs::exists(config_path)) return {};
  const json config = read_json(config_path);
  if (!config.contains("eos_token")) return {};
  const json& eos = config["eos_token"];
  const json text = eos.is_object() ? eos.value("content", json()) : eos;
  if (!text.is_string()) return {};
  const auto id = tokenizer->token_id(text.get<std::string>());
  if (!id || !tokenizer->is_added(*id)) return {};
  return {*id};
}

}  // namespace

std::vector<int32_t> load_stop_tokens(const std::string& dir, const io::ModelConfig& config,
                                      const text::Tokenizer* tokenizer) {
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
  return tokenizer_eos(dir, tokenizer);
}

std::unique_ptr<ChatModel> ChatModel::open(const std::string& dir, kernels::Compute compute) {
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<ChatModel> chat(new ChatModel(dir, model::Model::load(dir, compute)));
  chat->timings_.model_seconds = seconds_since(start);
  const auto text_start = std::chrono::steady_clock::now();
  if (fs::exists(fs::path(dir) / "tokenizer.json")) chat->tokenizer_ = text::Tokenizer::from_file(dir);
  chat->stop_tokens_ = load_stop_tokens(dir, chat->config(), chat->tokenizer_ ? &*chat->tokenizer_ : nullptr);
  chat->timings_.text_seconds = seconds_since(text_start);
  return chat;
}

const text::Tokenizer& ChatModel::tokenizer() const {
  if (!tokenizer_) fail(ErrorKind::kUsage, "{}: no tokenizer.json; pass token ids instead of text", dir_);
  return *tokenizer_;
}

const text::ChatTemplate& ChatModel::chat_template() const {
  if (!chat_template_) chat_template_ = text::ChatTemplate::from_model_dir(dir_);
  return *chat_template_;
}

std::vector<int32_t> ChatModel::encode_chat(const text::ChatRequest& request) const {
  return tokenizer().encode(chat_template().render(request));
}

model::GenerationResult respond(model::Session& session, std::span<const int32_t> prompt,
                                const model::GenerationOptions& options, const DecodeHooks& hooks) {
  // The hooks belong to this reply only: set for the call, removed on every exit.
  struct HookScope {
    model::Session& s;
    ~HookScope() {
      s.set_routing_hook({});
      s.set_activation_hook({});
    }
  } scope{session};
  session.set_routing_hook(hooks.on_routing);
  session.set_activation_hook(hooks.on_activation);
  return model::generate(session, prompt, options, hooks.on_token, hooks.on_logits);
}

model::GenerationOptions greedy_options(const ChatModel& chat, size_t max_tokens) {
  model::GenerationOptions o;
  o.max_tokens = max_tokens;
  o.stop_tokens = chat.stop_tokens();
  return o;
}

}  // namespace quantlab::chat
