#include "quant/prune.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <regex>

#include "core/error.h"
#include "io/model_config.h"
#include "io/output_dir.h"
#include "io/safetensors.h"
#include "quant/quantizer.h"

namespace quantlab::quant {

namespace {

// How one stored tensor changes.
struct PrunedTensor {
  std::string source, name;    // name in the input and in the output
  io::TensorSpec spec;         // output dtype and shape
  std::vector<int64_t> rows;   // axis-0 blocks to gather (empty: copy whole)
};

const std::regex kPerExpert(R"(model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(.+))");
const std::regex kStacked(R"(model\.layers\.(\d+)\.mlp\.switch_mlp\..+)");
const std::regex kRouter(R"(model\.layers\.(\d+)\.mlp\.gate\.(weight|scales|biases))");

void check_kept(const io::ModelConfig& c, const ExpertsKept& kept) {
  if (!c.is_moe()) fail(ErrorKind::kUsage, "{}: not a mixture-of-experts model: there are no experts to prune", c.path);
  size_t count = 0;
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    if (!c.is_moe_layer(layer)) continue;
    const auto it = kept.find(layer);
    if (it == kept.end()) fail(ErrorKind::kUsage, "no experts chosen for MoE layer {}", layer);
    const auto& ids = it->second;
    if (ids.empty()) fail(ErrorKind::kUsage, "layer {}: keeping no expert leaves the layer without an MLP", layer);
    if (count == 0) count = ids.size();
    if (ids.size() != count)
      fail(ErrorKind::kUsage, "layer {} keeps {} experts and another layer {}: config.json holds one expert count",
           layer, ids.size(), count);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] < 0 || ids[i] >= c.num_experts)
        fail(ErrorKind::kUsage, "layer {}: expert {} does not exist (the model has {})", layer, ids[i], c.num_experts);
      if (i > 0 && ids[i] <= ids[i - 1]) fail(ErrorKind::kUsage, "layer {}: expert ids must ascend without repeats", layer);
    }
  }
  for (const auto& [layer, ids] : kept)
    if (layer < 0 || layer >= c.num_hidden_layers || !c.is_moe_layer(layer))
      fail(ErrorKind::kUsage, "layer {} is not a MoE layer of {}", layer, c.path);
}

std::vector<PrunedTensor> plan_tensors(const io::ModelWeights& w, const ExpertsKept& kept) {
  std::vector<PrunedTensor> out;
  std::smatch m;
  for (const std::string& name : w.names()) {
    const io::TensorInfo& info = *w.at(name).info;
    PrunedTensor t{name, name, {name, info.dtype, info.shape}, {}};
    if (std::regex_match(name, m, kPerExpert)) {
      const auto& ids = kept.at(std::stoll(m[1]));
      const auto pos = std::find(ids.begin(), ids.end(), std::stoll(m[2]));
      if (pos == ids.end()) continue;
      t.name = t.spec.name = fmt::format("model.layers.{}.mlp.experts.{}.{}", m[1].str(), pos - ids.begin(), m[3].str());
    } else if (std::regex_match(name, m, kStacked) || std::regex_match(name, m, kRouter)) {
      t.rows = kept.at(std::stoll(m[1]));
      t.spec.shape[0] = static_cast<int64_t>(t.rows.size());
    }
    out.push_back(std::move(t));
  }
  return out;
}

void write_tensor(const io::ModelWeights& w, const PrunedTensor& t, io::SafetensorsWriter& writer) {
  const auto bytes = w.bytes(t.source);
  if (t.rows.empty()) return writer.write(t.name, bytes);
  const uint64_t block = bytes.size() / static_cast<uint64_t>(w.at(t.source).info->shape[0]);
  std::vector<uint8_t> gathered;
  gathered.reserve(block * t.rows.size());
  for (int64_t r : t.rows) gathered.insert(gathered.end(), bytes.begin() + r * block, bytes.begin() + (r + 1) * block);
  writer.write(t.name, gathered);
}

nlohmann::ordered_json pruned_config(const io::ModelConfig& c, int64_t kept) {
  nlohmann::ordered_json j = c.raw;
  j[j.contains("num_local_experts") && !j.contains("num_experts") ? "num_local_experts" : "num_experts"] = kept;
  j["num_experts_per_tok"] = std::min<int64_t>(c.num_experts_per_tok, kept);
  return j;
}

}  // namespace

PruneReport prune_experts(const std::string& in_dir, const std::string& out_dir, const ExpertsKept& kept,
                          const PruneOptions& options) {
  const io::ModelConfig config = io::load_model_config(in_dir);
  check_kept(config, kept);
  const io::ModelWeights weights = io::ModelWeights::open(in_dir);
  const std::vector<PrunedTensor> tensors = plan_tensors(weights, kept);
  PruneReport report;
  report.moe_layers = kept.size();
  report.experts_before = config.num_experts;
  report.experts_after = static_cast<int64_t>(kept.begin()->second.size());
  report.experts_per_token_before = config.num_experts_per_tok;
  report.experts_per_token_after = std::min(config.num_experts_per_tok, report.experts_after);
  for (const std::string& name : weights.names()) report.tensor_bytes_before += weights.at(name).info->nbytes;
  io::check_output_not_input(in_dir, out_dir);
  io::AtomicOutputDir out(out_dir, options.overwrite);
  {
    std::vector<io::TensorSpec> specs;
    uint64_t stored_elements = 0;  // the index's total_parameters: elements as stored
    for (const PrunedTensor& t : tensors) {
      specs.push_back(t.spec);
      int64_t n = 1;
      for (int64_t d : t.spec.shape) n *= d;
      stored_elements += static_cast<uint64_t>(n);
    }
    io::SafetensorsWriter writer(out.temp_path(), specs, options.max_shard_bytes,
                                 {{"format", config.quantization ? "mlx" : "pt"}});
    for (const PrunedTensor& t : tensors) write_tensor(weights, t, writer);
    writer.finish(stored_elements);
    report.tensor_bytes_after = writer.total_tensor_bytes();
  }
  std::ofstream(out.file("config.json")) << pruned_config(config, report.experts_after).dump(4) << "\n";
  copy_side_files(in_dir, out.temp_path());
  out.commit();
  return report;
}

}  // namespace quantlab::quant
