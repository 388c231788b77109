#include "quant/dequantizer.h"

#include <chrono>
#include <fstream>
#include <regex>

#include "core/error.h"
#include "core/progress.h"
#include "io/model_config.h"
#include "io/output_dir.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "kernels/kernels.h"
#include "quant/convert.h"
#include "quant/quantized_layout.h"
#include "quant/quantizer.h"

namespace quantlab::quant {

namespace {

constexpr int64_t kJobElements = 1 << 19;

// One output tensor: rows [first_row, first_row + rows) of a quantized module (an expert slice for
// stacked switch_mlp tensors), or a float tensor copied through.
struct Piece {
  std::string out_name;
  const QuantizedModule* module = nullptr;  // null: float copy of `source`
  std::string source;
  int64_t first_row = 0, rows = 0, cols = 0;
  std::vector<int64_t> shape;
  DType dtype = DType::kF32;
};

std::vector<Piece> make_pieces(const QuantizedLayout& layout, const io::ModelWeights& w,
                               std::optional<DType> dtype) {
  static const std::regex kSwitch(R"((.*\.mlp)\.switch_mlp\.(gate_proj|up_proj|down_proj))");
  std::vector<Piece> pieces;
  for (const auto& m : layout.modules) {
    const auto& s = m.logical_shape;
    const int64_t cols = s.back(), rows_per = s[s.size() - 2];
    const DType out = dtype.value_or(m.scale_dtype);
    std::smatch match;
    if (s.size() == 3 && std::regex_match(m.module, match, kSwitch)) {
      for (int64_t e = 0; e < s[0]; ++e)
        pieces.push_back({match[1].str() + ".experts." + std::to_string(e) + "." + match[2].str() + ".weight",
                          &m, m.module, e * rows_per, rows_per, cols, {rows_per, cols}, out});
      continue;
    }
    int64_t rows = 1;
    for (size_t i = 0; i + 1 < s.size(); ++i) rows *= s[i];
    pieces.push_back({m.module + ".weight", &m, m.module, 0, rows, cols, s, out});
  }
  static const std::regex kSwitchWeight(R"((.*\.mlp)\.switch_mlp\.(gate_proj|up_proj|down_proj)\.weight)");
  for (const auto& name : layout.float_tensors) {
    const auto& info = *w.at(name).info;
    const int64_t cols = info.shape.empty() ? 1 : info.shape.back();
    const DType out = is_float(info.dtype) && dtype ? *dtype : info.dtype;
    std::smatch match;
    if (info.shape.size() == 3 && std::regex_match(name, match, kSwitchWeight)) {
      // Stacked experts that stayed float (last dim not a multiple of the group) are unstacked too.
      for (int64_t e = 0; e < info.shape[0]; ++e)
        pieces.push_back({match[1].str() + ".experts." + std::to_string(e) + "." + match[2].str() + ".weight", nullptr,
                          name, e * info.shape[1], info.shape[1], cols, {info.shape[1], cols}, out});
      continue;
    }
    pieces.push_back({name, nullptr, name, 0, info.numel() / std::max<int64_t>(cols, 1), cols, info.shape, out});
  }
  return pieces;
}

void run_piece_rows(const io::ModelWeights& w, const Piece& p, RowRange r, io::SafetensorsWriter& writer,
                    std::vector<float>& values, std::vector<uint8_t>& bytes) {
  const size_t n = static_cast<size_t>((r.end - r.begin) * p.cols);
  const size_t elem = dtype_size(p.dtype);
  values.resize(n);
  if (p.module) {
    const kernels::MatrixView v = quantized_matrix_view(w, *p.module);
    for (int64_t row = r.begin; row < r.end; ++row)
      kernels::dequantize_row(v, static_cast<size_t>(p.first_row + row), values.data() + (row - r.begin) * p.cols);
  } else {
    const auto& e = w.at(p.source);
    const size_t in_elem = dtype_size(e.info->dtype);
    bytes.resize(n * in_elem);
    e.file->read(*e.info, static_cast<uint64_t>((p.first_row + r.begin) * p.cols) * in_elem, bytes.size(), bytes.data());
    if (!is_float(e.info->dtype) || e.info->dtype == p.dtype) {
      writer.write_range(p.out_name, static_cast<uint64_t>(r.begin * p.cols) * in_elem, bytes);
      return;
    }
    kernels::convert_to_f32(e.info->dtype, bytes.data(), n, values.data());
  }
  bytes.resize(n * elem);
  store_as(values.data(), n, p.dtype, bytes.data());
  writer.write_range(p.out_name, static_cast<uint64_t>(r.begin * p.cols) * elem, bytes);
}

nlohmann::ordered_json dequantized_config(const io::ModelConfig& config, std::optional<DType> dtype) {
  auto j = io::config_for_output(config, dtype, std::nullopt);
  return j;
}

}  // namespace

DequantizeReport dequantize_model(const std::string& in_dir, const std::string& out_dir,
                                  const DequantizeOptions& options, ThreadPool& pool) {
  const auto start = std::chrono::steady_clock::now();
  const io::ModelConfig config = io::load_model_config(in_dir);
  if (!config.quantization)
    fail(ErrorKind::kUsage, "{}: the model is not quantized (no 'quantization' in config.json)", config.path);
  const io::ModelWeights weights = io::ModelWeights::open(in_dir);
  const QuantizedLayout layout = describe_quantized(config, weights);
  const std::vector<Piece> pieces = make_pieces(layout, weights, options.dtype);
  io::check_output_not_input(in_dir, out_dir);
  io::AtomicOutputDir out(out_dir, options.overwrite);
  DequantizeReport report;
  report.modules = layout.modules.size();
  {
    std::vector<io::TensorSpec> specs;
    for (const auto& p : pieces) specs.push_back({p.out_name, p.dtype, p.shape});
    io::SafetensorsWriter writer(out.temp_path(), specs, options.max_shard_bytes, {{"format", "pt"}});
    std::vector<std::pair<const Piece*, RowRange>> jobs;
    uint64_t params = 0;
    for (const auto& p : pieces) {
      params += static_cast<uint64_t>(p.rows * p.cols);
      for (const auto& r : split_rows(p.rows, p.cols, kJobElements)) jobs.push_back({&p, r});
    }
    Progress progress("dequantize", jobs.size(), 0, options.show_progress);
    std::vector<std::vector<float>> values(pool.size());
    std::vector<std::vector<uint8_t>> bytes(pool.size());
    pool.parallel_for(jobs.size(), 1, [&](size_t b, size_t e, size_t worker) {
      for (size_t j = b; j < e; ++j) {
        run_piece_rows(weights, *jobs[j].first, jobs[j].second, writer, values[worker], bytes[worker]);
        progress.advance(1, 0);
      }
    });
    progress.finish();
    writer.finish(params);
    report.output_bytes = writer.total_tensor_bytes();
  }
  std::ofstream(out.file("config.json")) << dequantized_config(config, options.dtype).dump(4) << "\n";
  copy_side_files(in_dir, out.temp_path());
  out.commit();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace quantlab::quant
