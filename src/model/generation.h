// Autoregressive generation on a Session: prefill the prompt, then sample one token at a time until a
// stop token, the token budget or the context limit.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "model/sampler.h"
#include "model/session.h"

namespace quantlab::model {

struct GenerationOptions {
  size_t max_tokens = 128;
  SamplerOptions sampling;
  std::vector<int32_t> stop_tokens;  // generation ends after emitting one of these (it is kept)
};

enum class StopReason { kStopToken, kMaxTokens, kContextFull, kStoppedByCaller };
std::string_view stop_reason_name(StopReason r);

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated tokens, the stop token included
  StopReason reason = StopReason::kMaxTokens;
  double first_token_seconds = 0;  // prompt prefill plus the first sample
};

// Sees the logits before token `step` is chosen (step 0: after the prompt's prefill).
using LogitsHook = std::function<void(size_t step, std::span<const float> logits)>;

// Runs `prompt` (non-empty) after the session's cached positions, then generates. Calls on_token(id)
// as each token is chosen; returning false stops early. (Model directories, tokenizers and stop
// tokens are the chat layer's: chat/chat_model.h.)
GenerationResult generate(Session& session, std::span<const int32_t> prompt, const GenerationOptions& options,
                          const std::function<bool(int32_t)>& on_token = {}, const LogitsHook& on_logits = {});

}  // namespace quantlab::model
