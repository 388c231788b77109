#include "quant/plan.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <regex>
#include <set>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/format.h"
#include "quant/recipe.h"

namespace quantlab::quant {

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string strip_weight(const std::string& name) { return name.substr(0, name.size() - 7); }

void validate_options(const PlanOptions& o) {
  if (!kernels::is_supported_bits(o.bits))
    fail(ErrorKind::kUsage, "--bits {} is not supported ({})", o.bits, kernels::supported_bits_text());
  if (!kernels::is_supported_group_size(o.group_size))
    fail(ErrorKind::kUsage, "--group-size {} is not supported ({})", o.group_size,
         kernels::supported_group_sizes_text());
  for (const auto& r : o.overrides)
    if (r.quant && (!kernels::is_supported_bits(r.quant->bits) || !kernels::is_supported_group_size(r.quant->group_size)))
      fail(ErrorKind::kUsage, "--override '{}': bits {} / group size {} not supported (bits {}; group size {})",
           r.pattern, r.quant->bits, r.quant->group_size, kernels::supported_bits_text(),
           kernels::supported_group_sizes_text());
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

// mlx-lm's default class predicate plus the model predicate (routers at the family's settings, from
// the architecture registry: Qwen3-MoE's at 8 bits / group 64).
std::optional<io::ModuleQuant> choose_quant(const io::ModelConfig& config, const OutputTensor& t,
                                            const PlanOptions& o) {
  if (t.module.empty() || t.shape.size() < 2 || !is_float(t.source_dtype)) return std::nullopt;
  io::ModuleQuant q{o.bits, o.group_size, "affine"};
  if (io::is_router_module(config.arch, t.module)) {
    const io::ArchitectureInfo* family = io::find_architecture(config.arch);
    q = {family->router_bits, family->router_group_size, "affine"};
  }
  if (t.shape.back() % q.group_size != 0) return std::nullopt;
  return q;
}

// mlx-lm's quantize_model with a recipe predicate: every module it would quantize (a float matrix whose
// input width the global group size divides) at the recipe's width for it.
std::optional<io::ModuleQuant> recipe_quant(const io::ModelConfig& config, const OutputTensor& t,
                                            const PlanOptions& o, const Recipe& recipe) {
  if (t.module.empty() || t.shape.size() < 2 || !is_float(t.source_dtype)) return std::nullopt;
  if (t.shape.back() % o.group_size != 0) return std::nullopt;
  return io::ModuleQuant{recipe_bits(recipe, t.module, config.num_hidden_layers), o.group_size, "affine"};
}

// The note quantize prints when a recipe puts routers below 8 bits (a wrong router logit sends a token
// to another expert, which costs more than any rounding inside one expert).
void note_low_routers(const io::ModelConfig& config, QuantPlan& plan) {
  for (const auto& t : plan.tensors) {
    if (!t.quant || t.quant->bits >= 8 || !io::is_router_module(config.arch, t.module)) continue;
    plan.notes.push_back(fmt::format(
        "note: --recipe quantizes the MoE routers at {} bits, as mlx-lm does (its recipe replaces the model's "
        "router rule); --override 'mlp\\.gate$=8:64' pins them at 8 bits", t.quant->bits));
    return;
  }
}

// Applies the first matching override to each quantizable module; throws naming an override that
// matches nothing, or a module whose input width its group size does not divide.
void apply_overrides(const std::vector<ModuleOverride>& overrides, std::vector<OutputTensor>& tensors) {
  std::vector<std::regex> patterns;
  for (const auto& o : overrides) {
    try {
      patterns.emplace_back(o.pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      fail(ErrorKind::kUsage, "--override '{}': not a regular expression ({})", o.pattern, e.what());
    }
  }
  std::vector<bool> matched(overrides.size(), false);
  for (auto& t : tensors) {
    if (t.module.empty() || t.shape.size() < 2 || !is_float(t.source_dtype)) continue;
    for (size_t i = 0; i < overrides.size(); ++i) {
      if (!std::regex_search(t.module, patterns[i])) continue;
      matched[i] = true;
      const auto& q = overrides[i].quant;
      if (q && t.shape.back() % q->group_size != 0)
        fail(ErrorKind::kUsage, "override '{}': module '{}' has {} input features, not a multiple of group "
             "size {}", overrides[i].pattern, t.module, t.shape.back(), q->group_size);
      t.quant = q;
      t.method = q ? overrides[i].method : std::nullopt;
      break;
    }
  }
  for (size_t i = 0; i < overrides.size(); ++i) {
    if (matched[i]) continue;
    if (!overrides[i].source.empty())
      fail_input("{} names a module this model does not have (or cannot quantize)", overrides[i].source);
    fail(ErrorKind::kUsage, "override '{}' matches no quantizable module", overrides[i].pattern);
  }
}

}  // namespace

std::string exact_module_pattern(const std::string& module) {
  std::string out = "^";
  for (char c : module) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') out += '\\';
    out += c;
  }
  return out + "$";
}

ModuleOverride parse_module_override(const std::string& text, int default_group) {
  const size_t eq = text.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    fail(ErrorKind::kUsage, "--override '{}': expected REGEX=BITS[:GROUP] or REGEX=float", text);
  ModuleOverride o{text.substr(0, eq), std::nullopt, ""};
  const std::string value = text.substr(eq + 1);
  if (value == "float") return o;
  int bits = 0, group = default_group;
  char extra = 0;
  const int n = std::sscanf(value.c_str(), "%d:%d%c", &bits, &group, &extra);
  const bool shape_ok = (n == 1 && value.find(':') == std::string::npos) || n == 2;
  if (!shape_ok || value.find_first_not_of("0123456789:") != std::string::npos)
    fail(ErrorKind::kUsage, "--override '{}': '{}' is not BITS[:GROUP] or float", text, value);
  o.quant = io::ModuleQuant{bits, group, "affine"};
  return o;
}

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
  std::vector<io::TensorSpec> out;
  for (auto& t : kernels::affine_format(quant->bits)->stored_tensors(shape, quant->group_size, float_dtype))
    out.push_back({module + "." + t.suffix, t.dtype, std::move(t.shape)});
  return out;
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
    // safetensors allows empty tensors; no weight of a model is one, and an empty matrix would be
    // "quantized" into nothing without a word.
    if (std::find(info.shape.begin(), info.shape.end(), 0) != info.shape.end())
      fail_input("{}: tensor '{}' has a zero dimension (shape [{}])", weights.dir(), name, fmt::join(info.shape, ", "));
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
  const io::ArchitectureInfo* family = io::find_architecture(config.arch);
  if (family && family->moe) plan.tensors = stack_experts(config, sources, &consumed);
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
  const std::optional<Recipe> recipe = options.recipe.empty() ? std::nullopt : std::optional(find_recipe(options.recipe));
  const auto default_quant = [&](const OutputTensor& t) {
    return recipe ? recipe_quant(config, t, options, *recipe) : choose_quant(config, t, options);
  };
  for (auto& t : plan.tensors) {
    t.float_dtype = is_float(t.source_dtype) && plan.output_dtype ? *plan.output_dtype : t.source_dtype;
    t.quant = default_quant(t);
  }
  apply_overrides(options.overrides, plan.tensors);
  for (const auto& t : plan.tensors) {
    // mlx-lm records a recipe's answer for every module it quantizes; otherwise only the modules that
    // differ from the global setting get an entry.
    if (t.quant && (recipe || *t.quant != plan.quantization.global)) plan.quantization.per_module[t.module] = t.quant;
    // A module an override keeps in float is written as `false`, as mlx-lm records a predicate's "no".
    if (!t.quant && !t.module.empty() && default_quant(t)) plan.quantization.per_module[t.module] = std::nullopt;
  }
  if (recipe) note_low_routers(config, plan);
  return plan;
}

}  // namespace quantlab::quant
