// How a quantized tensor's codes are chosen (issue 21): round-to-nearest (`rtn`, MLX's own rule and the
// default, bit-exact with mlx-lm), error-compensated GPTQ (`gptq`), or GPTQ aimed at the fine-tune
// (`delta`). A plan can give each module its own (quant/plan.h); quant/rounding.h does the rounding.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace quantlab::quant {

enum class RoundingMethod { kRtn, kGptq, kDelta };
std::string_view rounding_method_name(RoundingMethod method);
// The method named `text` ("rtn", "gptq", "delta"); nullopt for any other text.
std::optional<RoundingMethod> find_rounding_method(std::string_view text);
// Throws Error(kUsage) naming the text and the choices.
RoundingMethod parse_rounding_method(std::string_view text);
// Whether any of `methods` is a calibrated one (gptq, delta): those need second moments.
bool any_calibrated(const std::vector<RoundingMethod>& methods);

}  // namespace quantlab::quant
