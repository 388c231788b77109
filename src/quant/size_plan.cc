#include "quant/size_plan.h"

#include <filesystem>
#include <regex>

#include <fmt/format.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "quant/architecture_shapes.h"
#include "quant/quantized_layout.h"

namespace quantlab::quant {

namespace fs = std::filesystem;

namespace {

bool has_weight_files(const std::string& dir) {
  if (fs::exists(fs::path(dir) / "model.safetensors.index.json")) return true;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".safetensors") return true;
  return false;
}

// The float tensors an MLX-quantized checkpoint was made from: quantized modules at their logical
// shape in the config's dtype (else their scales' dtype), stacked experts split back per expert.
std::vector<SourceTensor> float_sources_of_quantized(const io::ModelConfig& config, const io::ModelWeights& w) {
  static const std::regex kSwitch(R"((.*\.mlp)\.switch_mlp\.(gate_proj|up_proj|down_proj))");
  const QuantizedLayout layout = describe_quantized(config, w);
  std::vector<SourceTensor> out;
  for (const auto& m : layout.modules) {
    const DType dtype = config.dtype.value_or(m.scale_dtype);
    std::smatch match;
    if (m.logical_shape.size() == 3 && std::regex_match(m.module, match, kSwitch)) {
      for (int64_t e = 0; e < m.logical_shape[0]; ++e)
        out.push_back({match[1].str() + ".experts." + std::to_string(e) + "." + match[2].str() + ".weight", dtype,
                       {m.logical_shape[1], m.logical_shape[2]}});
      continue;
    }
    out.push_back({m.module + ".weight", dtype, m.logical_shape});
  }
  for (const auto& name : layout.float_tensors) {
    const auto& info = *w.at(name).info;
    out.push_back({name, info.dtype, info.shape});
  }
  return out;
}

uint64_t tensor_bytes_of(const io::ModelWeights& w) {
  uint64_t n = 0;
  for (const auto& name : w.names()) n += w.at(name).info->nbytes;
  return n;
}

// The length of the JSON header the writer produces for one shard (nlohmann sorts the keys of each
// entry: data_offsets, dtype, shape), padded to 8 bytes, plus the 8-byte length prefix.
uint64_t shard_header_bytes(const std::vector<const io::TensorSpec*>& members) {
  uint64_t len = std::string(R"({"__metadata__":{"format":"mlx"}})").size();
  uint64_t offset = 0;
  for (const auto* s : members) {
    const uint64_t end = offset + s->nbytes();
    len += fmt::format(R"(,"{}":{{"data_offsets":[{},{}],"dtype":"{}","shape":[{}]}})", s->name, offset, end,
                       dtype_name(s->dtype), fmt::join(s->shape, ","))
               .size();
    offset = end;
  }
  return 8 + (len + 7) / 8 * 8;
}

// Safetensors headers as io::SafetensorsWriter lays them out (greedy shards of at most 5 GiB).
uint64_t estimate_header_bytes(const std::vector<io::TensorSpec>& specs) {
  uint64_t total = 0, filled = 0;
  std::vector<const io::TensorSpec*> shard;
  for (const auto& s : specs) {
    if (filled > 0 && filled + s.nbytes() > io::kDefaultMaxShardBytes) {
      total += shard_header_bytes(shard);
      shard.clear();
      filled = 0;
    }
    shard.push_back(&s);
    filled += s.nbytes();
  }
  return total + shard_header_bytes(shard);
}

uint64_t kv_cache_bytes(const io::ModelConfig& c, int64_t context) {
  return 2ull * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * sizeof(float) * context;
}

// Mirrors model::Scratch (model/blocks.h), which the engine reports as its scratch: per batched token
// x, normed, proj [H]; q, attn [n_h*d]; cos, sin [d/2]; gate, up [max(I, k*Im)] (MoE runs every
// (token, slot) row of a batch side by side); for MoE also router [E], gathered and expert_out [k*H]
// and the chosen experts and their weights [2k]; plus per worker the probabilities of one attention
// task (4 queries x (context + 4)). All 4-byte values. (The logits belong to the caller.)
uint64_t scratch_bytes(const io::ModelConfig& c, const RuntimeAssumptions& r) {
  const uint64_t H = c.hidden_size, q_dim = c.num_attention_heads * c.head_dim, k = c.num_experts_per_tok;
  const bool moe = c.num_experts > 0;
  const uint64_t per_token =
      3 * H + 2 * q_dim + c.head_dim + (moe ? c.num_experts + 2 * k * H + 2 * k : 0);
  const uint64_t batch = static_cast<uint64_t>(std::min(r.prefill_chunk, r.context));
  const uint64_t ffn = std::max<uint64_t>(c.intermediate_size, moe ? k * c.moe_intermediate_size : 0);
  const uint64_t gate_up = 2 * batch * ffn;
  const uint64_t scores = r.threads * 4 * (static_cast<uint64_t>(r.context) + 4);
  return sizeof(float) * (batch * per_token + gate_up + scores);
}

bool is_switch_mlp(const OutputTensor& t) {
  return t.shape.size() == 3 && t.module.find(".switch_mlp.") != std::string::npos;
}

}  // namespace

std::string_view plan_origin_name(PlanOrigin o) {
  switch (o) {
    case PlanOrigin::kConfigOnly: return "config.json only (shapes derived from the architecture)";
    case PlanOrigin::kFloatHeaders: return "config.json + safetensors headers";
    case PlanOrigin::kQuantizedHeaders: return "config.json + MLX-quantized headers (float shapes reconstructed)";
  }
  return "?";
}

PlanSource plan_source_from_config(const io::ModelConfig& config) {
  PlanSource s;
  s.dir = fs::path(config.path).parent_path().string();
  s.config = config;
  s.config.quantization.reset();
  s.tensors = source_tensors_from_config(s.config);
  return s;
}

PlanSource load_plan_source(const std::string& dir) {
  const io::ModelConfig config = io::load_model_config(dir);
  if (!has_weight_files(dir)) {
    PlanSource s = plan_source_from_config(config);
    s.dir = dir;
    return s;
  }
  const io::ModelWeights weights = io::ModelWeights::open(dir);
  return plan_source_of(config, weights);
}

PlanSource plan_source_of(const io::ModelConfig& config, const io::ModelWeights& weights) {
  PlanSource s;
  s.dir = weights.dir();
  s.config = config;
  s.stored_tensor_bytes = tensor_bytes_of(weights);
  if (config.quantization) {
    s.origin = PlanOrigin::kQuantizedHeaders;
    s.stored_quant = config.quantization->global;
    for (const auto& [module, setting] : config.quantization->per_module)
      s.stored_overrides.push_back({exact_module_pattern(module), setting,
                                    fmt::format("{}: quantization['{}']", config.path, module)});
    s.tensors = float_sources_of_quantized(config, weights);
    s.config.quantization.reset();
  } else {
    s.origin = PlanOrigin::kFloatHeaders;
    s.tensors = source_tensors(weights);
  }
  return s;
}

uint64_t decode_bytes_per_token(const io::ModelConfig& config, const QuantPlan& plan) {
  uint64_t total = 0;
  for (const auto& t : plan.tensors) {
    const uint64_t bytes = t.output_bytes();
    if (t.name == "model.embed_tokens.weight" && !t.shape.empty() && t.shape[0] > 0) {
      total += bytes / static_cast<uint64_t>(t.shape[0]);  // one row per token
      if (config.tie_word_embeddings) total += bytes;       // and all of it as the output head
    } else if (is_switch_mlp(t) && config.num_experts_per_tok > 0) {
      const uint64_t experts = static_cast<uint64_t>(t.shape[0]);
      total += bytes / experts * std::min<uint64_t>(experts, config.num_experts_per_tok);
    } else {
      total += bytes;
    }
  }
  return total;
}

namespace {

SizeEstimate estimate_from_plan(const PlanSource& source, const QuantPlan& plan, const RuntimeAssumptions& runtime) {
  SizeEstimate e;
  e.parameters = plan.total_parameters();
  e.tensor_bytes = plan.output_bytes();
  e.header_bytes = estimate_header_bytes(plan.output_specs());
  e.kv_cache_bytes = kv_cache_bytes(source.config, runtime.context);
  e.scratch_bytes = scratch_bytes(source.config, runtime);
  e.bytes_per_token = decode_bytes_per_token(source.config, plan);
  return e;
}

}  // namespace

SizeEstimate estimate_size(const PlanSource& source, int bits, int group_size, const RuntimeAssumptions& runtime) {
  PlanOptions options;
  options.bits = bits;
  options.group_size = group_size;
  SizeEstimate e = estimate_from_plan(source, make_quant_plan(source.config, source.tensors, options), runtime);
  e.bits = bits;
  e.group_size = group_size;
  return e;
}

SizeEstimate estimate_mixed(const PlanSource& source, const PlanOptions& options, const std::string& label,
                            const RuntimeAssumptions& runtime) {
  SizeEstimate e = estimate_from_plan(source, make_quant_plan(source.config, source.tensors, options), runtime);
  e.bits = options.bits;
  e.group_size = options.group_size;
  e.label = label;
  return e;
}

SizeEstimate estimate_as_stored(const PlanSource& source, const RuntimeAssumptions& runtime) {
  if (source.stored_quant) {
    PlanOptions options;
    options.bits = source.stored_quant->bits;
    options.group_size = source.stored_quant->group_size;
    options.overrides = source.stored_overrides;
    SizeEstimate e = estimate_from_plan(source, make_quant_plan(source.config, source.tensors, options), runtime);
    e.bits = options.bits;
    e.group_size = options.group_size;
    return e;
  }
  QuantPlan plan = make_quant_plan(source.config, source.tensors, PlanOptions{});
  for (auto& t : plan.tensors) {  // nothing quantized, nothing cast: the float files as they are
    t.quant.reset();
    t.float_dtype = t.source_dtype;
  }
  return estimate_from_plan(source, plan, runtime);
}

PlanSource with_experts_kept(const PlanSource& source, int64_t keep) {
  const io::ModelConfig& c = source.config;
  if (!c.is_moe()) fail(ErrorKind::kUsage, "--keep-experts: {} is not a mixture-of-experts model", source.dir);
  if (keep < 1 || keep > c.num_experts)
    fail(ErrorKind::kUsage, "--keep-experts {}: choose between 1 and the {} experts the model has", keep, c.num_experts);
  static const std::regex kExpert(R"(model\.layers\.\d+\.mlp\.experts\.(\d+)\..+)");
  static const std::regex kRouter(R"(model\.layers\.\d+\.mlp\.gate\.weight)");
  PlanSource out = source;
  out.tensors.clear();
  std::smatch m;
  for (const SourceTensor& t : source.tensors) {
    if (std::regex_match(t.name, m, kExpert) && std::stoll(m[1]) >= keep) continue;
    SourceTensor kept = t;
    if (std::regex_match(t.name, kRouter)) kept.shape[0] = keep;
    out.tensors.push_back(std::move(kept));
  }
  out.config.num_experts = keep;
  out.config.num_experts_per_tok = std::min(c.num_experts_per_tok, keep);
  for (const char* key : {"num_experts", "num_local_experts"})
    if (out.config.raw.contains(key)) out.config.raw[key] = keep;
  out.config.raw["num_experts_per_tok"] = out.config.num_experts_per_tok;
  out.stored_tensor_bytes = 0;  // no longer what is on disk
  return out;
}

uint64_t float16_bytes(const PlanSource& source) {
  const QuantPlan plan = make_quant_plan(source.config, source.tensors, PlanOptions{});
  uint64_t n = 0;
  for (const auto& t : plan.tensors)
    n += static_cast<uint64_t>(t.numel()) * (is_float(t.source_dtype) ? 2 : dtype_size(t.source_dtype));
  return n;
}

PlanRow compare_to_baseline(const SizeEstimate& row, const SizeEstimate& baseline, uint64_t f16_bytes,
                            double bandwidth_gb_per_s) {
  const auto less_pct = [](double x, double base) { return base > 0 ? 100.0 * (1.0 - x / base) : 0.0; };
  PlanRow r;
  r.estimate = row;
  r.disk_smaller_pct = less_pct(row.tensor_bytes, baseline.tensor_bytes);
  r.memory_less_pct = less_pct(row.memory_bytes(), baseline.memory_bytes());
  r.float16_smaller_pct = less_pct(row.tensor_bytes, f16_bytes);
  r.speed_ratio = row.bytes_per_token ? static_cast<double>(baseline.bytes_per_token) / row.bytes_per_token : 0;
  r.tokens_per_s = bandwidth_gb_per_s > 0 && row.bytes_per_token ? bandwidth_gb_per_s * 1e9 / row.bytes_per_token : 0;
  return r;
}

PlanTable make_plan_table(const PlanSource& source, const std::vector<QuantSetting>& settings,
                          QuantSetting baseline, const RuntimeAssumptions& runtime, double bandwidth_gb_per_s,
                          ThreadPool& pool) {
  std::vector<QuantSetting> all = settings;
  all.push_back(baseline);
  std::vector<SizeEstimate> estimates(all.size());
  PlanTable table;
  // One more job than settings: the float16 size, which needs a plan of its own.
  pool.parallel_for(all.size() + 1, 1, [&](size_t begin, size_t end, size_t) {
    for (size_t i = begin; i < end; ++i) {
      if (i == all.size()) table.float16_bytes = float16_bytes(source);
      else estimates[i] = estimate_size(source, all[i].bits, all[i].group_size, runtime);
    }
  });
  table.baseline = estimates.back();
  for (size_t i = 0; i < settings.size(); ++i)
    table.rows.push_back(compare_to_baseline(estimates[i], table.baseline, table.float16_bytes, bandwidth_gb_per_s));
  return table;
}

}  // namespace quantlab::quant
