#include "quant/floor_plan.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "io/architecture.h"
#include "kernels/format.h"

namespace quantlab::quant {

namespace {

// Routers are left to the family's rule (8 bits / group 64, above any floor that makes sense).
PlanOptions floored_options(const io::ModelConfig& config, const std::vector<std::string>& touched, int floor_bits,
                            int rest_bits, int group_size) {
  PlanOptions o;
  o.bits = rest_bits;
  o.group_size = group_size;
  const io::ModuleQuant kept{std::max(floor_bits, rest_bits), group_size, "affine"};
  for (const std::string& module : touched)
    if (!io::is_router_module(config.arch, module))
      o.overrides.push_back({exact_module_pattern(module), kept, "adapter floor"});
  return o;
}

}  // namespace

FloorPlan plan_with_floor(const PlanSource& source, const io::AdapterTargets& targets, int floor_bits, int group_size,
                          uint64_t budget_tensor_bytes, const RuntimeAssumptions& runtime) {
  FloorPlan f;
  f.floor_bits = floor_bits;
  f.group_size = group_size;
  f.budget_tensor_bytes = budget_tensor_bytes;
  const QuantPlan uniform = make_quant_plan(source.config, source.tensors, PlanOptions{});
  for (const OutputTensor& t : uniform.tensors)
    if (t.quant && targets.touches(t.module, source.config.num_hidden_layers)) f.touched.push_back(t.module);
  if (f.touched.empty())
    fail(ErrorKind::kUsage, "{}: the adapter touches none of {}'s quantizable modules", targets.config_path, source.dir);
  std::vector<int> widths = kernels::supported_bits();
  std::sort(widths.rbegin(), widths.rend());
  for (int rest : widths) {
    f.rest_bits = rest;
    f.options = floored_options(source.config, f.touched, floor_bits, rest, group_size);
    f.estimate = estimate_mixed(source, f.options, "", runtime);
    if (f.estimate.tensor_bytes <= budget_tensor_bytes) {
      f.fits = true;
      break;
    }
  }
  f.estimate.label = fmt::format("adapter >= {}-bit, rest {}-bit", floor_bits, f.rest_bits);
  const QuantPlan plan = make_quant_plan(source.config, source.tensors, f.options);
  for (const OutputTensor& t : plan.tensors)
    if (std::find(f.touched.begin(), f.touched.end(), t.module) != f.touched.end()) f.touched_bytes += t.output_bytes();
  return f;
}

}  // namespace quantlab::quant
