// config.json from a stranger: both spellings (transformers v4 and v5), quantization blocks with
// per-module entries, MoE fields; a parsed config must survive being written back for mlx-lm.
#include "fuzz_support.h"
#include "io/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace quantlab;
  const auto& dir = fuzz::scratch();
  dir.clear();
  dir.write("config.json", {reinterpret_cast<const char*>(data), size});
  fuzz::parses_or_refuses([&] {
    const io::ModelConfig config = io::load_model_config(dir.path().string());
    const auto written = io::config_for_output(config, std::nullopt, config.quantization);
    // What quantlab writes must read back as the same model.
    const io::ModelConfig again = io::parse_model_config(written, "written config");
    fuzz::require(again.num_hidden_layers == config.num_hidden_layers, "layers survive a round trip");
    fuzz::require(again.hidden_size == config.hidden_size, "hidden size survives a round trip");
  });
  return 0;
}
