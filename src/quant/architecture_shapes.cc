#include "quant/architecture_shapes.h"

#include <algorithm>

#include "io/architecture.h"

namespace quantlab::quant {

std::vector<SourceTensor> source_tensors_from_config(const io::ModelConfig& c, std::optional<DType> dtype) {
  const DType stored = dtype.value_or(c.dtype.value_or(DType::kBF16));
  std::vector<SourceTensor> out;
  for (auto& t : io::checkpoint_tensors(c)) out.push_back({std::move(t.name), stored, std::move(t.shape)});
  std::sort(out.begin(), out.end(), [](const SourceTensor& a, const SourceTensor& b) { return natural_less(a.name, b.name); });
  return out;
}

uint64_t count_parameters(const std::vector<SourceTensor>& tensors) {
  uint64_t n = 0;
  for (const auto& t : tensors) {
    uint64_t e = 1;
    for (int64_t d : t.shape) e *= static_cast<uint64_t>(d);
    n += e;
  }
  return n;
}

}  // namespace quantlab::quant
