// The compute paths' dispatch facts (compute_paths.h) and their rounded inputs.
#include "kernels/compute_paths.h"

#include <algorithm>

#include "kernels/bf16_affine.h"
#include "kernels/int8_affine.h"

namespace quantlab::kernels {

bool native_kernel_available(Compute c) {
  switch (c) {
    case Compute::kInt8: return int8::vnni_available();
    case Compute::kBf16: return bf16::kernel_available();
    case Compute::kExact: break;
  }
  return true;
}

const char* compute_kernel(Compute c) {
  switch (c) {
    case Compute::kInt8:
      return int8::vnni_available() ? "AVX512_VNNI" : "exact kernels on int8-rounded activations";
    case Compute::kBf16:
      return bf16::kernel_available() ? "AVX512_BF16" : "exact kernels on bf16-rounded activations";
    case Compute::kExact: break;
  }
  return active_target();
}

std::vector<float> rounded_input(Compute c, const float* x, size_t n, size_t cols, size_t group_size) {
  switch (c) {
    case Compute::kInt8: return int8::rounded_activations(x, n, cols, group_size);
    case Compute::kBf16: return bf16::rounded_activations(x, n * cols);
    case Compute::kExact: break;
  }
  return std::vector<float>(x, x + n * cols);
}

}  // namespace quantlab::kernels
