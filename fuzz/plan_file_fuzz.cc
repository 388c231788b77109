// A quantization plan file (quantize --plan, plan --plan) from a stranger, applied to the bundled MoE
// model's tensors: settings are checked when read, module names when the plan is made.
#include "fuzz_support.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "quant/plan.h"
#include "quant/plan_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace quantlab;
  static const std::string model = fuzz::data_path("reference-models/qwen3moe-tiny");
  static const io::ModelConfig config = io::load_model_config(model);
  static const std::vector<quant::SourceTensor> sources = quant::source_tensors(io::ModelWeights::open(model));
  const auto& dir = fuzz::scratch();
  dir.clear();
  const std::string path = dir.write("plan.json", {reinterpret_cast<const char*>(data), size});
  fuzz::parses_or_refuses([&] {
    const quant::PlanOptions options = quant::load_plan_file(path);
    const quant::QuantPlan plan = quant::make_quant_plan(config, sources, options);
    fuzz::require(!plan.tensors.empty(), "a plan writes tensors");
    (void)plan.output_bytes();
    (void)quant::plan_file_json(plan);
  });
  return 0;
}
