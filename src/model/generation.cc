#include "model/generation.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace quantlab::model {

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
                          const std::function<bool(int32_t)>& on_token, const LogitsHook& on_logits) {
  if (prompt.empty()) fail(ErrorKind::kUsage, "the prompt has no tokens");
  Sampler sampler(options.sampling);
  GenerationResult result;
  const auto start = std::chrono::steady_clock::now();
  std::vector<float> logits = session.forward(prompt);
  while (result.tokens.size() < options.max_tokens) {
    if (on_logits) on_logits(result.tokens.size(), logits);
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
