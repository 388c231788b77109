#include "analysis/calibration.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "chat/chat_model.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "core/progress.h"
#include "analysis/stats_collector.h"
#include "analysis/suite_prompts.h"
#include "io/architecture.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"

namespace quantlab::analysis {

namespace {

constexpr const char* kStatsFormat = "quantlab.stats/1";

}  // namespace

CalibrationStats calibrate(const CalibrationOptions& o, ThreadPool& pool) {
  if (o.suite_path.empty() && o.text_path.empty())
    fail(ErrorKind::kUsage, "calibrate needs --suite or --text (the inputs to record statistics on)");
  if (!o.tools_path.empty() && o.suite_path.empty()) fail(ErrorKind::kUsage, "--tools goes with --suite");
  const auto chat = chat::ChatModel::open(o.model_dir);
  const auto prompts = encode_suite_prompts(o.suite_path, o.tools_path, *chat);
  const auto chunks = encode_text_chunks(o.text_path, o.text_chunk, *chat);
  size_t longest = 1;
  for (const auto& p : prompts) longest = std::max(longest, p.size() + o.max_tokens + 1);
  for (const auto& c : chunks) longest = std::max(longest, c.size() + 1);
  model::Session session(chat->model(), pool, {longest, 512});
  StatsCollector collector(chat->config(), o.second_moments, o.expert_statistics);
  chat::DecodeHooks hooks;
  hooks.on_activation = [&](const model::ActivationEvent& e) { collector.on_activation(e); };
  CalibrationStats stats = empty_stats(chat->config());
  Progress progress("calibrate", prompts.size() + chunks.size(), 0, o.show_progress);
  // Prompts, then the model's own greedy reply fed back token by token: every reply token but the last
  // passes through the layers (teacher-forced on its own reply).
  for (const auto& prompt : prompts) {
    session.reset();
    const auto r = chat::respond(session, prompt, chat::greedy_options(*chat, o.max_tokens), hooks);
    stats.tokens += prompt.size() + r.tokens.size() - 1;
    progress.advance(1, 0);
  }
  session.set_activation_hook(hooks.on_activation);
  for (const auto& chunk : chunks) {
    session.reset();
    session.forward(chunk);
    stats.tokens += chunk.size();
    progress.advance(1, 0);
  }
  session.set_activation_hook({});
  progress.finish();
  stats.modules = collector.take();
  finish_means(stats.modules);
  return stats;
}

void write_stats(const CalibrationStats& s, const std::string& path) {
  std::vector<std::vector<float>> buffers;  // the float tensors, converted from double
  std::vector<io::TensorData> tensors;
  const auto add_floats = [&](std::string name, const std::vector<double>& values, std::vector<int64_t> shape) {
    const std::vector<float>& b = buffers.emplace_back(values.begin(), values.end());
    tensors.push_back({{std::move(name), DType::kF32, std::move(shape)},
                       {reinterpret_cast<const uint8_t*>(b.data()), b.size() * sizeof(float)}});
  };
  buffers.reserve(s.modules.size() * 3);
  for (const auto& [module, m] : s.modules) {
    const int64_t cols = static_cast<int64_t>(m.cols), experts = static_cast<int64_t>(m.experts);
    const bool stacked = m.experts > 1;
    add_floats(module, m.mean_x2, stacked ? std::vector<int64_t>{experts, cols} : std::vector<int64_t>{cols});
    add_floats(module + ".tokens", m.tokens, {experts});
    if (!m.xxt.empty())
      add_floats(module + ".xxt", m.xxt,
                 stacked ? std::vector<int64_t>{experts, cols, cols} : std::vector<int64_t>{cols, cols});
    if (!m.inputs) continue;
    const quant::RoutedInputs& in = *m.inputs;
    const int64_t rows = static_cast<int64_t>(in.rows);
    tensors.push_back({{module + ".inputs", DType::kBF16, {rows, cols}},
                       {reinterpret_cast<const uint8_t*>(in.values.data()), in.values.size() * sizeof(uint16_t)}});
    tensors.push_back({{module + ".routes", DType::kI32, {rows, static_cast<int64_t>(in.route_width)}},
                       {reinterpret_cast<const uint8_t*>(in.routes.data()), in.routes.size() * sizeof(int32_t)}});
  }
  io::write_safetensors_file(path, tensors,
                             {{"format", kStatsFormat},
                              {"model_type", s.model_type},
                              {"hidden_size", std::to_string(s.hidden_size)},
                              {"num_hidden_layers", std::to_string(s.num_hidden_layers)},
                              {"vocab_size", std::to_string(s.vocab_size)},
                              {"num_experts", std::to_string(s.num_experts)},
                              {"tokens", std::to_string(s.tokens)}});
}

namespace {

int64_t metadata_int(const io::SafetensorsFile& f, const char* key) {
  const auto it = f.metadata().find(key);
  if (it == f.metadata().end()) fail_input("{}: metadata '{}' is missing (not a quantlab statistics file?)", f.path(), key);
  try {
    return std::stoll(it->second);
  } catch (const std::exception&) {
    fail_input("{}: metadata '{}' is not an integer", f.path(), key);
  }
}

std::vector<double> read_f32(const io::SafetensorsFile& f, const io::TensorInfo& t) {
  if (t.dtype != DType::kF32) fail_input("{}: tensor '{}' must be F32", f.path(), t.name);
  // Read, not mapped: a statistics file of a big model is a gigabyte, which as mapped pages would count
  // in the resident memory beside the copy.
  std::vector<float> v(static_cast<size_t>(t.nbytes) / sizeof(float));
  f.read(t, 0, v.size() * sizeof(float), v.data());
  return {v.begin(), v.end()};
}

// "M.inputs" and "M.routes" of module m, checked: shapes, dtypes, expert ids in range.
std::shared_ptr<quant::RoutedInputs> read_routed_inputs(const io::SafetensorsFile& f, const io::TensorInfo& inputs,
                                                        const ModuleStats& m) {
  const std::string routes_name = inputs.name.substr(0, inputs.name.size() - 7) + ".routes";
  const io::TensorInfo* routes = f.find(routes_name);
  if (routes == nullptr) fail_input("{}: tensor '{}' has no '{}'", f.path(), inputs.name, routes_name);
  if (inputs.dtype != DType::kBF16 || inputs.shape.size() != 2 || inputs.shape[1] != static_cast<int64_t>(m.cols))
    fail_input("{}: tensor '{}' is {} {}; expected BF16 [rows, {}]", f.path(), inputs.name,
               dtype_name(inputs.dtype), inputs.shape_string(), m.cols);
  if (routes->dtype != DType::kI32 || routes->shape.size() != 2 || routes->shape[0] != inputs.shape[0] ||
      routes->shape[1] < 1)
    fail_input("{}: tensor '{}' is {} {}; expected I32 [{}, k]", f.path(), routes->name, dtype_name(routes->dtype),
               routes->shape_string(), inputs.shape[0]);
  auto in = std::make_shared<quant::RoutedInputs>();
  in->rows = static_cast<size_t>(inputs.shape[0]);
  in->cols = m.cols;
  in->route_width = static_cast<size_t>(routes->shape[1]);
  in->values.resize(in->rows * in->cols);
  in->routes.resize(in->rows * in->route_width);
  f.read(inputs, 0, in->values.size() * sizeof(uint16_t), in->values.data());
  f.read(*routes, 0, in->routes.size() * sizeof(int32_t), in->routes.data());
  for (int32_t e : in->routes)
    if (e < 0 || static_cast<size_t>(e) >= m.experts)
      fail_input("{}: tensor '{}' routes a row to expert {}; the module has {} experts", f.path(), routes->name, e,
                 m.experts);
  return in;
}

}  // namespace

CalibrationStats read_stats(const std::string& path) {
  const io::SafetensorsFile f(path);
  const auto format = f.metadata().find("format");
  if (format == f.metadata().end() || format->second != kStatsFormat)
    fail_input("{}: not a quantlab statistics file (metadata format is not \"{}\"; make one with `quantlab "
               "calibrate`)", path, kStatsFormat);
  CalibrationStats s;
  s.model_type = f.metadata().count("model_type") ? f.metadata().at("model_type") : "";
  s.hidden_size = metadata_int(f, "hidden_size");
  s.num_hidden_layers = metadata_int(f, "num_hidden_layers");
  s.vocab_size = metadata_int(f, "vocab_size");
  s.num_experts = metadata_int(f, "num_experts");
  s.tokens = static_cast<uint64_t>(metadata_int(f, "tokens"));
  for (const auto& t : f.tensors()) {
    if (t.name.ends_with(".tokens") || t.name.ends_with(".xxt") || t.name.ends_with(".inputs") ||
        t.name.ends_with(".routes"))
      continue;
    const auto* count = f.find(t.name + ".tokens");
    if (!count) fail_input("{}: tensor '{}' has no '{}.tokens'", path, t.name, t.name);
    ModuleStats m;
    m.mean_x2 = read_f32(f, t);
    m.tokens = read_f32(f, *count);
    m.experts = t.shape.size() == 2 ? static_cast<size_t>(t.shape[0]) : 1;
    m.cols = static_cast<size_t>(t.shape.back());
    if (t.shape.size() > 2 || m.tokens.size() != m.experts)
      fail_input("{}: tensor '{}' has shape {} and {} token counts", path, t.name, t.shape_string(), m.tokens.size());
    if (const auto* xxt = f.find(t.name + ".xxt")) {
      if (xxt->numel() != static_cast<int64_t>(m.experts * m.cols * m.cols))
        fail_input("{}: tensor '{}' has shape {}; expected {} square matrices of {} columns", path, xxt->name,
                   xxt->shape_string(), m.experts, m.cols);
      m.xxt = read_f32(f, *xxt);
    }
    if (const auto* inputs = f.find(t.name + ".inputs")) m.inputs = read_routed_inputs(f, *inputs, m);
    s.modules.emplace(t.name, std::move(m));
  }
  return s;
}

void check_stats_match(const CalibrationStats& s, const io::ModelConfig& c, const std::string& stats_path) {
  const int64_t experts = c.is_moe() ? c.num_experts : 0;
  if (s.hidden_size != c.hidden_size || s.num_hidden_layers != c.num_hidden_layers || s.vocab_size != c.vocab_size ||
      s.num_experts != experts)
    fail_input("{} was recorded on another model ({}: hidden {}, {} layers, vocab {}, {} experts) than {} "
               "(hidden {}, {} layers, vocab {}, {} experts)", stats_path, s.model_type, s.hidden_size,
               s.num_hidden_layers, s.vocab_size, s.num_experts, c.path, c.hidden_size, c.num_hidden_layers,
               c.vocab_size, experts);
}

namespace {

// a = (ta·a + tb·b) / (ta + tb) per block of `width` values, with the blocks' token counts.
void weighted_mean(std::vector<double>& a, const std::vector<double>& b, const std::vector<double>& ta,
                   const std::vector<double>& tb, size_t width) {
  for (size_t e = 0; e < ta.size(); ++e) {
    const double n = ta[e] + tb[e];
    for (size_t i = e * width; i < (e + 1) * width; ++i) a[i] = n > 0 ? (ta[e] * a[i] + tb[e] * b[i]) / n : 0.0;
  }
}

void merge_module(const std::string& name, ModuleStats& a, const ModuleStats& b) {
  if (a.experts != b.experts || a.cols != b.cols || a.xxt.empty() != b.xxt.empty() ||
      static_cast<bool>(a.inputs) != static_cast<bool>(b.inputs))
    fail_input("statistics of '{}' cannot be merged: {} x {} channels{} against {} x {}{}", name, a.experts, a.cols,
               a.inputs ? " with routed inputs" : "", b.experts, b.cols, b.inputs ? " with routed inputs" : "");
  weighted_mean(a.mean_x2, b.mean_x2, a.tokens, b.tokens, a.cols);
  if (!a.xxt.empty()) weighted_mean(a.xxt, b.xxt, a.tokens, b.tokens, a.cols * a.cols);
  for (size_t e = 0; e < a.tokens.size(); ++e) a.tokens[e] += b.tokens[e];
  if (!a.inputs) return;
  if (a.inputs->route_width != b.inputs->route_width)
    fail_input("statistics of '{}' cannot be merged: routes of {} and {} experts", name, a.inputs->route_width,
               b.inputs->route_width);
  auto in = std::make_shared<quant::RoutedInputs>(*a.inputs);
  in->rows += b.inputs->rows;
  in->values.insert(in->values.end(), b.inputs->values.begin(), b.inputs->values.end());
  in->routes.insert(in->routes.end(), b.inputs->routes.begin(), b.inputs->routes.end());
  a.inputs = std::move(in);
}

}  // namespace

CalibrationStats merge_stats(CalibrationStats a, const CalibrationStats& b) {
  if (a.model_type != b.model_type || a.hidden_size != b.hidden_size || a.num_hidden_layers != b.num_hidden_layers ||
      a.vocab_size != b.vocab_size || a.num_experts != b.num_experts || a.modules.size() != b.modules.size())
    fail_input("statistics cannot be merged: {} (hidden {}, {} layers, vocab {}, {} experts, {} modules) against {} "
               "(hidden {}, {} layers, vocab {}, {} experts, {} modules)", a.model_type, a.hidden_size,
               a.num_hidden_layers, a.vocab_size, a.num_experts, a.modules.size(), b.model_type, b.hidden_size,
               b.num_hidden_layers, b.vocab_size, b.num_experts, b.modules.size());
  for (auto& [name, m] : a.modules) {
    const auto other = b.modules.find(name);
    if (other == b.modules.end()) fail_input("statistics cannot be merged: '{}' is in one only", name);
    merge_module(name, m, other->second);
  }
  a.tokens += b.tokens;
  return a;
}

bool take_rounding_statistics(CalibrationStats& stats, quant::RoundingOptions& rounding) {
  std::vector<std::shared_ptr<const quant::RoutedInputs>> distinct;
  for (auto& [module, m] : stats.modules) {
    if (m.inputs) {
      std::shared_ptr<const quant::RoutedInputs> in = std::move(m.inputs);
      const auto same = std::find_if(distinct.begin(), distinct.end(), [&](const auto& known) {
        return known->cols == in->cols && known->values == in->values && known->routes == in->routes;
      });
      if (same != distinct.end()) in = *same;
      else distinct.push_back(in);
      rounding.routed_inputs[module] = in;
    }
    if (m.xxt.empty()) continue;
    rounding.moments[module].assign(m.xxt.begin(), m.xxt.end());
    std::vector<double>().swap(m.xxt);
  }
  return !rounding.moments.empty() || !rounding.routed_inputs.empty();
}

}  // namespace quantlab::analysis
