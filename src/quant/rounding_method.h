// How a quantized tensor's codes are chosen (issue 21): round-to-nearest (`rtn`, MLX's own rule and the
// default, bit-exact with mlx-lm), error-compensated GPTQ (`gptq`), or GPTQ aimed at the fine-tune
// (`delta`). A plan can give each module its own (quant/plan.h); quant/rounding.h does the rounding.
#pragma once

#include <string_view>

namespace quantlab::quant {

enum class RoundingMethod { kRtn, kGptq, kDelta };
std::string_view rounding_method_name(RoundingMethod method);
// Throws Error(kUsage) naming the text and the choices.
RoundingMethod parse_rounding_method(std::string_view text);

}  // namespace quantlab::quant
