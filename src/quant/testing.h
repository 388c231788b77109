// Helpers for the quant layer's tests only (included by *_test.cc).
#pragma once

#include <string>
#include <vector>

#include "io/safetensors.h"
#include "quant/convert.h"

namespace quantlab::quant::test_helpers {

// A stored float tensor (F32/F16/BF16) as f32 values, through the scalar reference conversion.
inline std::vector<float> load_f32(const io::ModelWeights& w, const std::string& name) {
  const auto& e = w.at(name);
  std::vector<float> out(static_cast<size_t>(e.info->numel()));
  load_as_f32_scalar(e.info->dtype, w.bytes(e).data(), out.size(), out.data());
  return out;
}

}  // namespace quantlab::quant::test_helpers
