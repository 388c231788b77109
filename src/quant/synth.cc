#include "quant/synth.h"

#include <chrono>
#include <fstream>
#include <map>

#include "core/error.h"
#include "core/progress.h"
#include "io/model_config.h"
#include "io/output_dir.h"
#include "quant/architecture_shapes.h"
#include "quant/convert.h"
#include "quant/quantizer.h"
#include "quant/synth_weights.h"

namespace quantlab::quant {

namespace {

constexpr int64_t kJobElements = 1 << 20;  // 4 MB of f32 scratch per thread

struct SynthJob {
  size_t tensor;  // index into the tensor list
  RowRange rows;
};

struct TensorShape {
  int64_t rows, cols;
};

TensorShape matrix_shape(const SourceTensor& t) {
  const int64_t cols = t.shape.empty() ? 1 : t.shape.back();
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < t.shape.size(); ++i) rows *= t.shape[i];
  return {rows, cols};
}

nlohmann::ordered_json with_dtype(nlohmann::ordered_json config, DType dtype) {
  config["torch_dtype"] = float_dtype_config_name(dtype);
  if (config.contains("dtype")) config["dtype"] = float_dtype_config_name(dtype);  // v5 spelling
  return config;
}

void write_json(const std::string& path, const nlohmann::ordered_json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  if (!out) fail(ErrorKind::kIo, "{}: cannot write", path);
}

// Generates and writes the tensors; one job is a block of rows of one tensor.
void write_tensors(const std::vector<SourceTensor>& tensors, const std::vector<SynthTensorGenerator>& gens,
                   io::SafetensorsWriter& writer, const SynthOptions& o, ThreadPool& pool) {
  std::vector<SynthJob> jobs;
  uint64_t total_bytes = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorShape s = matrix_shape(tensors[i]);
    for (const RowRange& r : split_rows(s.rows, s.cols, kJobElements)) jobs.push_back({i, r});
    total_bytes += static_cast<uint64_t>(s.rows * s.cols) * dtype_size(o.dtype);
  }
  Progress progress("synth", jobs.size(), total_bytes, o.show_progress);
  struct Scratch {
    std::vector<float> values;
    std::vector<uint8_t> bytes;
  };
  std::vector<Scratch> scratch(pool.size());
  const size_t elem = dtype_size(o.dtype);
  pool.parallel_for(jobs.size(), 1, [&](size_t begin, size_t end, size_t worker) {
    Scratch& s = scratch[worker];
    for (size_t j = begin; j < end; ++j) {
      const SynthJob& job = jobs[j];
      const TensorShape shape = matrix_shape(tensors[job.tensor]);
      const size_t n = static_cast<size_t>((job.rows.end - job.rows.begin) * shape.cols);
      s.values.resize(n);
      s.bytes.resize(n * elem);
      gens[job.tensor].fill_rows(job.rows.begin, job.rows.end - job.rows.begin, shape.cols, s.values.data());
      store_as(s.values.data(), n, o.dtype, s.bytes.data());
      writer.write_range(tensors[job.tensor].name, static_cast<uint64_t>(job.rows.begin * shape.cols) * elem, s.bytes);
      progress.advance(1, s.bytes.size());
    }
  });
  progress.finish();
}

SynthTensorGenerator generator_for(const SourceTensor& t, uint64_t seed) {
  return SynthTensorGenerator(seed, t.name, synth_kind_of(t.name, t.shape.size()));
}

// The checkpoint generated and quantized in one pass: each job's rows generated, rounded to the
// checkpoint's dtype (what its file would hold), then quantized as quantize_model would from the file.
SynthReport synthesize_quantized(const nlohmann::ordered_json& config, const std::vector<SourceTensor>& tensors,
                                 const std::string& out_dir, const SynthOptions& o, ThreadPool& pool) {
  std::map<std::string, SynthTensorGenerator> gens;
  for (const auto& t : tensors) gens.emplace(t.name, generator_for(t, o.seed));
  GeneratedModel model{io::parse_model_config(config, out_dir + "/config.json"), tensors, {}, {}};
  model.fill = [&gens, dtype = o.dtype](const std::string& name, RowRange rows, int64_t cols, float* out) {
    gens.at(name).fill_rows(rows.begin, rows.end - rows.begin, cols, out);
    round_to_dtype(out, static_cast<size_t>((rows.end - rows.begin) * cols), dtype);
  };
  model.side_files["generation_config.json"] = synth_generation_config(config).dump(2) + "\n";
  QuantizeOptions q;
  q.plan = *o.quantize;
  q.max_shard_bytes = o.max_shard_bytes;
  q.overwrite = o.overwrite;
  q.show_progress = o.show_progress;
  const QuantizeReport r = quantize_generated(model, out_dir, q, pool);
  return {tensors.size(), count_parameters(tensors), r.output_bytes, r.shards, r.seconds};
}

}  // namespace

SynthReport synthesize_model(const nlohmann::ordered_json& config_json, const std::string& out_dir,
                             const SynthOptions& o, ThreadPool& pool) {
  const auto start = std::chrono::steady_clock::now();
  if (!is_float(o.dtype)) fail(ErrorKind::kUsage, "synth: dtype {} is not a float type", dtype_name(o.dtype));
  const nlohmann::ordered_json config = with_dtype(config_json, o.dtype);
  const std::vector<SourceTensor> tensors =
      source_tensors_from_config(io::parse_model_config(config, out_dir + "/config.json"), o.dtype);
  if (o.quantize) return synthesize_quantized(config, tensors, out_dir, o, pool);
  std::vector<SynthTensorGenerator> gens;
  std::vector<io::TensorSpec> specs;
  for (const auto& t : tensors) {
    gens.push_back(generator_for(t, o.seed));
    specs.push_back({t.name, t.dtype, t.shape});
  }
  io::AtomicOutputDir out(out_dir, o.overwrite);
  SynthReport report;
  report.tensors = tensors.size();
  report.parameters = count_parameters(tensors);
  {
    io::SafetensorsWriter writer(out.temp_path(), specs, o.max_shard_bytes, {{"format", "pt"}});
    write_tensors(tensors, gens, writer, o, pool);
    writer.finish(report.parameters);
    report.tensor_bytes = writer.total_tensor_bytes();
    report.shards = writer.shard_names();
  }
  write_json(out.file("config.json"), config);
  write_json(out.file("generation_config.json"), synth_generation_config(config));
  out.commit();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace quantlab::quant
