// Autoregressive generation on a Session: prefill the prompt, then sample one token at a time until a
// stop token, the token budget or the context limit.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "io/model_config.h"
#include "model/sampler.h"
#include "model/session.h"

namespace quantlab::model {

// Stop token ids of a model directory, first source that names any: generation_config.json
// `eos_token_id` (int or list), then config.json's, then tokenizer_config.json's `eos_token` looked
// up among tokenizer.json's added tokens. Throws naming the file when one of them is malformed.
std::vector<int32_t> load_stop_tokens(const std::string& dir, const io::ModelConfig& config);

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

// Runs `prompt` (non-empty) after the session's cached positions, then generates. Calls on_token(id)
// as each token is chosen; returning false stops early.
GenerationResult generate(Session& session, std::span<const int32_t> prompt, const GenerationOptions& options,
                          const std::function<bool(int32_t)>& on_token = {});

}  // namespace quantlab::model
