// The chat layer: a model directory opened once — config.json, the safetensors headers, the weights
// (mapped), tokenizer, chat template, generation config and stop tokens — and the one way to turn a
// conversation into a reply: render → encode → prefill → greedy or sampled decode, with hooks that see
// each step's logits and each MoE layer's routing. bench's worker, output retention and `generate`
// sit on it; the later analyses (calibration, expert profiles, the server) need exactly these hooks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/generation.h"
#include "model/model.h"
#include "model/session.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace quantlab::chat {

// Stop token ids of a model directory, first source that names any: generation_config.json
// `eos_token_id` (int or list), then config.json's, then tokenizer_config.json's `eos_token` looked
// up in the tokenizer. Throws naming the file when one of them is malformed.
std::vector<int32_t> load_stop_tokens(const std::string& dir, const io::ModelConfig& config,
                                      const text::Tokenizer* tokenizer);

// Seconds each part of opening took (bench reports load time phase by phase).
struct OpenTimings {
  double model_seconds = 0;  // config.json, headers, binding the mapped weights
  double text_seconds = 0;   // tokenizer, chat template, stop tokens
};

class ChatModel {
 public:
  // Opens DIR. The tokenizer is read when DIR has tokenizer.json (a model without one can still run
  // on token ids), the chat template on first use. Throws Error naming the file on bad input.
  // `compute`: the arithmetic of its quantized matrices (model::Model::load).
  static std::unique_ptr<ChatModel> open(const std::string& dir,
                                         kernels::Compute compute = kernels::Compute::kExact);

  const std::string& dir() const { return dir_; }
  const model::Model& model() const { return model_; }
  const io::ModelConfig& config() const { return model_.config(); }
  const io::ModelWeights& weights() const { return model_.weights(); }
  bool has_tokenizer() const { return tokenizer_.has_value(); }
  // Throws Error(kUsage) naming the directory when it has no tokenizer.json.
  const text::Tokenizer& tokenizer() const;
  // Loaded on first use (Error naming tokenizer_config.json when it has no template).
  const text::ChatTemplate& chat_template() const;
  const std::vector<int32_t>& stop_tokens() const { return stop_tokens_; }
  const OpenTimings& open_timings() const { return timings_; }

  // The prompt's token ids: the chat template rendered, then encoded.
  std::vector<int32_t> encode_chat(const text::ChatRequest& request) const;

 private:
  ChatModel(std::string dir, model::Model model) : dir_(std::move(dir)), model_(std::move(model)) {}

  std::string dir_;
  model::Model model_;
  std::optional<text::Tokenizer> tokenizer_;
  mutable std::optional<text::ChatTemplate> chat_template_;
  std::vector<int32_t> stop_tokens_;
  OpenTimings timings_;
};

// What a reply's decode lets the caller see. Every hook is optional.
struct DecodeHooks {
  // Logits before token `step` is chosen (step 0: after the prompt's prefill).
  std::function<void(size_t step, std::span<const float> logits)> on_logits;
  // Each MoE layer's routing of every token (prompt and reply).
  model::RoutingHook on_routing;
  // Each chosen token; returning false stops (model::StopReason::kStoppedByCaller).
  std::function<bool(int32_t)> on_token;
  // Every Linear input of every forward pass (prompt and reply): calibration statistics.
  model::ActivationHook on_activation;
};

// Prefills `prompt` after the session's cached positions and decodes with `options` (greedy when
// options.sampling.temperature is 0), stopping at a stop token, the budget or the context limit. The
// hooks are the session's for this call only.
model::GenerationResult respond(model::Session& session, std::span<const int32_t> prompt,
                                const model::GenerationOptions& options, const DecodeHooks& hooks = {});

// Options that stop at the model's own stop tokens, greedy, at most max_tokens.
model::GenerationOptions greedy_options(const ChatModel& chat, size_t max_tokens);

}  // namespace quantlab::chat
