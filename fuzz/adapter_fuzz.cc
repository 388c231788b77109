// A LoRA adapter from a stranger: adapter_config.json and its tensors, in PEFT's layout (first byte
// 'P') or mlx-lm's (any other first byte). Input: selector byte, config, 0x1E, safetensors bytes.
#include "fuzz_support.h"
#include "io/adapter.h"
#include "io/adapter_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace quantlab;
  if (size == 0) return 0;
  const bool peft = data[0] == 'P';
  const auto parts = fuzz::split_parts(data + 1, size - 1, 2);
  const auto& dir = fuzz::scratch();
  dir.clear();
  dir.write("adapter_config.json", parts[0]);
  dir.write(peft ? "adapter_model.safetensors" : "adapters.safetensors", parts[1]);
  fuzz::parses_or_refuses([&] {
    const io::Adapter adapter = io::load_adapter(dir.path().string());
    for (const io::LoraModule& m : adapter.modules) {
      const size_t experts = static_cast<size_t>(std::max<int64_t>(m.experts, 1));
      fuzz::require(m.a.size() == experts * static_cast<size_t>(m.rank * m.in), "A holds experts x rank x in");
      fuzz::require(m.b.size() == experts * static_cast<size_t>(m.out * m.rank), "B holds experts x out x rank");
      if (m.out > 0 && m.in > 0 && m.rank > 0) {
        std::vector<float> row(static_cast<size_t>(m.embedding ? m.out : m.in));
        m.delta_row(0, 0, row.data());
      }
    }
  });
  // The config alone (plan --adapter reads only it).
  fuzz::parses_or_refuses([&] {
    const io::AdapterTargets targets = io::read_adapter_targets(dir.path().string());
    (void)targets.touches("model.layers.1.self_attn.q_proj", 2);
    (void)targets.touches("model.layers.0.mlp.experts.3.gate_proj", 2);
  });
  return 0;
}
