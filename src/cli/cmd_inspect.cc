// quantlab inspect DIR [--json] [--tensors]
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "quant/model_summary.h"

namespace quantlab::cli {

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
  return s;
}

void print_summary(const quant::ModelSummary& s, bool all_tensors) {
  fmt::print("model         {}\n", s.dir);
  fmt::print("architecture  {} ({})\n", s.architecture, s.architecture_class);
  if (s.global_quant)
    fmt::print("quantization  affine {} bits, group {}\n", s.global_quant->bits, s.global_quant->group_size);
  else
    fmt::print("quantization  none (float)\n");
  fmt::print("parameters    {} ({:.3f} B), {} quantized\n", s.params, s.params / 1e9, s.quantized_params);
  fmt::print("disk size     {} weights, {} all files\n", human_bytes(s.disk_bytes), human_bytes(s.all_files_bytes));
  fmt::print("weight memory {} (mapped in place)\n", human_bytes(s.tensor_bytes));
  fmt::print("bits/weight   {:.3f} overall", s.bits_per_weight);
  if (s.quantized_params) fmt::print(", {:.3f} in quantized modules (scales and biases included)", s.quantized_bits_per_weight);
  fmt::print("\n\n{:<60} {:<30} {:>16} {:>12}\n", "tensor", "storage", "shape", "bytes");
  size_t shown = 0;
  for (const auto& t : s.tensors) {
    if (!all_tensors && shown++ >= 40) {
      fmt::print("... {} more (use --tensors to list all)\n", s.tensors.size() - 40);
      break;
    }
    fmt::print("{:<60} {:<30} {:>16} {:>12}\n", t.name, t.storage, shape_text(t.shape), t.bytes);
  }
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto all = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("inspect", "Describe a model: architecture, parameters, storage, size");
  cmd->add_option("dir", *dir, "Model directory")->required();
  cmd->add_flag("--json", *json, "Machine-readable output");
  cmd->add_flag("--tensors", *all, "List every tensor (default: the first 40)");
  cmd->callback([=] {
    const auto s = quant::summarize_model(*dir);
    if (*json) fmt::print("{}\n", s.to_json().dump(2));
    else print_summary(s, *all);
  });
}

}  // namespace quantlab::cli
