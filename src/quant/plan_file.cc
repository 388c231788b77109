#include "quant/plan_file.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/mapped_file.h"
#include "kernels/format.h"

namespace quantlab::quant {

namespace {

using ojson = nlohmann::ordered_json;

int setting_field(const ojson& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_number_integer())
    fail_input("{}: '{}' must be an integer", where, key);
  return j[key].get<int>();
}

io::ModuleQuant read_setting(const ojson& j, const std::string& where) {
  if (!j.is_object()) fail_input("{}: expected {{\"bits\": B, \"group_size\": G}} or false", where);
  io::ModuleQuant q{setting_field(j, "bits", where), setting_field(j, "group_size", where), "affine"};
  if (j.contains("mode") && j["mode"] != "affine")
    fail(ErrorKind::kUnsupported, "{}: mode {} is not supported (affine only)", where, j["mode"].dump());
  if (!kernels::is_supported_bits(q.bits) || !kernels::is_supported_group_size(q.group_size))
    fail_input("{}: bits {} / group_size {} not supported (bits {}; group size {})", where, q.bits, q.group_size,
               kernels::supported_bits_text(), kernels::supported_group_sizes_text());
  return q;
}

// A module's "method" (absent: the quantizer's own).
std::optional<RoundingMethod> read_method(const ojson& j, const std::string& where) {
  if (!j.contains("method")) return std::nullopt;
  const ojson& m = j["method"];
  if (m.is_string())
    if (const auto method = find_rounding_method(m.get<std::string>())) return method;
  fail_input("{}: 'method' must be \"rtn\", \"gptq\" or \"delta\", not {}", where, m.dump());
}

}  // namespace

PlanOptions load_plan_file(const std::string& path) {
  ojson j;
  try {
    j = ojson::parse(read_text_file(path));
  } catch (const ojson::exception& e) {  // bad syntax, and numbers beyond a double (406)
    fail_input("{}: not valid JSON: {}", path, e.what());
  }
  try {
    return plan_options_from_json(j, path);
  } catch (const ojson::exception& e) {  // a field of the wrong type
    fail_input("{}: {}", path, e.what());
  }
}

PlanOptions plan_options_from_json(const ojson& j, const std::string& path) {
  if (!j.is_object()) fail_input("{}: a plan must be a JSON object", path);
  if (j.value("format", ojson()) != kPlanFormat)
    fail_input("{}: 'format' must be \"{}\" (a plan written by `quantlab allocate` or `quantize`)", path, kPlanFormat);
  const io::ModuleQuant global = read_setting(j, path);
  PlanOptions o;
  o.bits = global.bits;
  o.group_size = global.group_size;
  if (!j.contains("modules") || !j["modules"].is_object()) fail_input("{}: 'modules' must be an object", path);
  for (auto it = j["modules"].begin(); it != j["modules"].end(); ++it) {
    const std::string where = fmt::format("{}: modules['{}']", path, it.key());
    ModuleOverride rule{exact_module_pattern(it.key()), std::nullopt, where};
    if (!(it->is_boolean() && !it->get<bool>())) {
      rule.quant = read_setting(*it, where);
      rule.method = read_method(*it, where);
    }
    o.overrides.push_back(std::move(rule));
  }
  return o;
}

ojson plan_file_json(const QuantPlan& plan) {
  ojson modules = ojson::object();
  uint64_t bytes = 0, params = 0, quantized = 0;
  for (const auto& t : plan.tensors) {
    bytes += t.output_bytes();
    params += static_cast<uint64_t>(t.numel());
    if (t.module.empty() || t.shape.size() < 2) continue;
    if (t.quant) {
      modules[t.module] = {{"bits", t.quant->bits}, {"group_size", t.quant->group_size}};
      if (t.method) modules[t.module]["method"] = rounding_method_name(*t.method);
      ++quantized;
    } else {
      modules[t.module] = false;
    }
  }
  return {{"format", kPlanFormat},
          {"bits", plan.quantization.global.bits},
          {"group_size", plan.quantization.global.group_size},
          {"tensor_bytes", bytes},
          {"parameters", params},
          {"bits_per_weight", params ? 8.0 * static_cast<double>(bytes) / static_cast<double>(params) : 0.0},
          {"quantized_modules", quantized},
          {"modules", modules}};
}

}  // namespace quantlab::quant
