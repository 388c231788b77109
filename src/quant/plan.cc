#include "quant/plan.h"

#include <algorithm>
#include <map>
#include <set>

#include "core/error.h"
#include "io/safetensors.h"
#include "quant/affine_reference.h"

namespace quantlab::quant {

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string strip_weight(const std::string& name) { return name.substr(0, name.size() - 7); }

void validate_options(const PlanOptions& o) {
  if (!is_supported_bits(o.bits))
    fail(ErrorKind::kUsage, "--bits {} is not supported (2, 3, 4, 5, 6, 7 or 8)", o.bits);
  if (!is_supported_group_size(o.group_size))
    fail(ErrorKind::kUsage, "--group-size {} is not supported (32, 64 or 128)", o.group_size);
}

void refuse_quantized_input(const io::ModelConfig& config, const std::vector<SourceTensor>& sources) {
  if (config.quantization)
    fail(ErrorKind::kUsage, "{}: the model is already quantized ({} bits); run `quantlab dequantize` "
         "first to get a float checkpoint", config.path, config.quantization->global.bits);
  for (const auto& s : sources)
    if (ends_with(s.name, ".scales") || (s.dtype == DType::kU32 && ends_with(s.name, ".weight")))
      fail(ErrorKind::kUsage, "tensor '{}' is already quantized; run `quantlab dequantize` first", s.name);
}

// Stacks per-expert tensors "P.experts.E.X.weight" into "P.switch_mlp.X.weight" [E, out, in].
struct ExpertGroup {
  std::map<int64_t, const SourceTensor*> experts;
};

// Splits "<prefix>.mlp.experts.<E>.<proj>.weight" (proj = gate_proj|up_proj|down_proj). Plain string
// parsing: this runs for every tensor of 235B-parameter MoE models, where std::regex was the cost.
bool parse_expert_name(const std::string& name, std::string* prefix, int64_t* expert, std::string* proj) {
  static const std::string kMarker = ".mlp.experts.", kSuffix = ".weight";
  const size_t at = name.find(kMarker);
  if (at == std::string::npos || !name.ends_with(kSuffix)) return false;
  size_t i = at + kMarker.size(), digits = i;
  while (digits < name.size() && std::isdigit(static_cast<unsigned char>(name[digits]))) ++digits;
  if (digits == i || digits >= name.size() || name[digits] != '.') return false;
  *proj = name.substr(digits + 1, name.size() - kSuffix.size() - digits - 1);
  if (*proj != "gate_proj" && *proj != "up_proj" && *proj != "down_proj") return false;
  *prefix = name.substr(0, at + 4);  // through ".mlp"
  *expert = std::stoll(name.substr(i, digits - i));
  return true;
}

std::vector<OutputTensor> stack_experts(const io::ModelConfig& config,
                                        const std::vector<SourceTensor>& sources,
                                        std::set<std::string>* consumed) {
  std::map<std::string, ExpertGroup> groups;  // key: "<prefix>.switch_mlp.<proj>"
  for (const auto& s : sources) {
    std::string prefix, proj;
    int64_t expert = 0;
    if (!parse_expert_name(s.name, &prefix, &expert, &proj)) continue;
    groups[prefix + ".switch_mlp." + proj].experts[expert] = &s;
  }
  std::vector<OutputTensor> out;
  for (const auto& [module, group] : groups) {
    const int64_t count = config.num_experts > 0 ? config.num_experts : static_cast<int64_t>(group.experts.size());
    const SourceTensor* first = group.experts.begin()->second;
    OutputTensor t;
    t.name = module + ".weight";
    t.module = module;
    t.source_dtype = first->dtype;
    for (int64_t e = 0; e < count; ++e) {
      auto it = group.experts.find(e);
      if (it == group.experts.end())
        fail_input("{}: expert {} is missing ({} of {} experts present)", module, e, group.experts.size(), count);
      if (it->second->shape != first->shape || it->second->dtype != first->dtype)
        fail_input("tensor '{}': shape or dtype differs from expert 0 ('{}')", it->second->name, first->name);
      t.sources.push_back(it->second->name);
      consumed->insert(it->second->name);
    }
    if (group.experts.size() != static_cast<size_t>(count))
      fail_input("{}: {} expert tensors found, config says num_experts = {}", module, group.experts.size(), count);
    t.shape = {count, first->shape[0], first->shape[1]};
    out.push_back(std::move(t));
  }
  return out;
}

bool is_dropped(const io::ModelConfig& config, const SourceTensor& s) {
  if (ends_with(s.name, "rotary_emb.inv_freq")) return true;
  return config.tie_word_embeddings && s.name == "lm_head.weight";
}

// mlx-lm's default class predicate plus the model predicate (Qwen3-MoE router at 8 bits / group 64).
std::optional<io::ModuleQuant> choose_quant(const io::ModelConfig& config, const OutputTensor& t,
                                            const PlanOptions& o) {
  if (t.module.empty() || t.shape.size() < 2 || !is_float(t.source_dtype)) return std::nullopt;
  io::ModuleQuant q{o.bits, o.group_size, "affine"};
  if (config.arch == io::Architecture::kQwen3Moe && ends_with(t.module, "mlp.gate")) q = {8, 64, "affine"};
  if (t.shape.back() % q.group_size != 0) return std::nullopt;
  return q;
}

}  // namespace

bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      const std::string na = a.substr(i, ie - i), nb = b.substr(j, je - j);
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

int64_t OutputTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t OutputTensor::rows() const { return numel() / std::max<int64_t>(shape.back(), 1); }

std::vector<io::TensorSpec> OutputTensor::specs() const {
  if (!quant) return {{name, float_dtype, shape}};
  std::vector<int64_t> packed = shape, groups = shape;
  packed.back() = shape.back() * quant->bits / 32;
  groups.back() = shape.back() / quant->group_size;
  return {{module + ".weight", DType::kU32, packed},
          {module + ".scales", float_dtype, groups},
          {module + ".biases", float_dtype, groups}};
}

uint64_t OutputTensor::output_bytes() const {
  uint64_t n = 0;
  for (const auto& s : specs()) n += s.nbytes();
  return n;
}

std::vector<io::TensorSpec> QuantPlan::output_specs() const {
  std::vector<io::TensorSpec> specs;
  for (const auto& t : tensors)
    for (auto& s : t.specs()) specs.push_back(std::move(s));
  return specs;
}

uint64_t QuantPlan::output_bytes() const {
  uint64_t n = 0;
  for (const auto& t : tensors) n += t.output_bytes();
  return n;
}

uint64_t QuantPlan::total_parameters() const {
  uint64_t n = 0;
  for (const auto& t : tensors) n += static_cast<uint64_t>(t.numel());
  return n;
}

std::vector<SourceTensor> source_tensors(const io::ModelWeights& weights) {
  std::vector<SourceTensor> out;
  for (const auto& name : weights.names()) {
    const auto& info = *weights.at(name).info;
    out.push_back({name, info.dtype, info.shape});
  }
  return out;
}

QuantPlan make_quant_plan(const io::ModelConfig& config, const std::vector<SourceTensor>& sources,
                          const PlanOptions& options) {
  validate_options(options);
  refuse_quantized_input(config, sources);
  QuantPlan plan;
  plan.output_dtype = options.dtype ? options.dtype : config.dtype;
  std::set<std::string> consumed;
  if (config.arch == io::Architecture::kQwen3Moe) plan.tensors = stack_experts(config, sources, &consumed);
  for (const auto& s : sources) {
    if (consumed.count(s.name)) continue;
    if (is_dropped(config, s)) {
      plan.dropped.push_back(s.name);
      continue;
    }
    OutputTensor t;
    t.name = s.name;
    t.sources = {s.name};
    t.shape = s.shape;
    t.source_dtype = s.dtype;
    if (ends_with(s.name, ".weight") && s.shape.size() >= 2) t.module = strip_weight(s.name);
    plan.tensors.push_back(std::move(t));
  }
  std::sort(plan.tensors.begin(), plan.tensors.end(),
            [](const OutputTensor& a, const OutputTensor& b) { return natural_less(a.name, b.name); });
  plan.quantization.global = {options.bits, options.group_size, "affine"};
  for (auto& t : plan.tensors) {
    t.float_dtype = is_float(t.source_dtype) && plan.output_dtype ? *plan.output_dtype : t.source_dtype;
    t.quant = choose_quant(config, t, options);
    if (t.quant && *t.quant != plan.quantization.global) plan.quantization.per_module[t.module] = t.quant;
  }
  return plan;
}

}  // namespace quantlab::quant
