#include "quant/quantizer.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <tuple>

#include <unistd.h>

#include "core/error.h"
#include "core/progress.h"
#include "io/model_config.h"
#include "io/output_dir.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
#include "kernels/affine_reference.h"
#include "quant/plan_file.h"
#include "quant/convert.h"

namespace quantlab::quant {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kJobElements = 1 << 17;  // 128K values: 512 KB of f32 scratch per thread
// GPTQ's jobs are larger: kGptqRowChunkElements (quant/gptq.h).
constexpr int64_t kGptqJobElements = kGptqRowChunkElements;
// Reading past the page cache, a job is one synchronous request: 2M values (4 MB of bfloat16) keep the
// disk busy between two of them (256 KB requests left the cold run waiting on latency).
constexpr int64_t kUncachedJobElements = 1 << 21;

struct Job {
  const OutputTensor* tensor;
  size_t source;    // index into tensor->sources
  RowRange rows;    // rows of that source
  int64_t out_row;  // first row in the output tensor
  const GptqFactor* factor = nullptr;  // GPTQ rounding of a quantized tensor; null: to nearest
};

struct Scratch {
  std::vector<uint8_t> raw;
  io::DirectBuffer direct;
  std::vector<float> values;
  std::vector<uint32_t> packed;
  std::vector<float> scales, biases;
  std::vector<uint8_t> scales_out, biases_out, float_out;
  GptqScratch gptq;
};

// The values of a source tensor: read from a checkpoint, or generated (quantize_generated).
struct ValueSource {
  const io::ModelWeights* weights = nullptr;
  const SourceRowFill* fill = nullptr;
  // Read the checkpoint past the page cache (O_DIRECT): QuantizeOptions::uncached_reads.
  bool uncached = false;
};

class ModelQuantizer {
 public:
  ModelQuantizer(ValueSource source, io::SafetensorsWriter& writer, KernelPath kernel)
      : source_(source), writer_(writer), kernel_(kernel) {}

  void run_job(const Job& job, Scratch& s) const {
    const OutputTensor& t = *job.tensor;
    const int64_t cols = t.cols();
    if (source_.fill != nullptr) {
      s.values.resize(static_cast<size_t>((job.rows.end - job.rows.begin) * cols));
      (*source_.fill)(t.sources[job.source], job.rows, cols, s.values.data());
      quantize_values(job, s, kernels::first_non_finite(s.values.data(), s.values.size()));
      return;
    }
    const auto& entry = source_.weights->at(t.sources[job.source]);
    const size_t in_elem = dtype_size(t.source_dtype);
    const uint64_t offset = static_cast<uint64_t>(job.rows.begin * cols) * in_elem;
    const size_t bytes = static_cast<size_t>((job.rows.end - job.rows.begin) * cols) * in_elem;
    if (!source_.uncached) {
      s.raw.resize(bytes);
      entry.file->read(*entry.info, offset, bytes, s.raw.data());
      convert_and_quantize(job, s.raw.data(), s);
      return;
    }
    // Uncached jobs are large (kUncachedJobElements: one request keeps the disk busy); they are
    // converted and quantized in slices of the usual size, so the float32 scratch stays in L2. GPTQ
    // jobs keep their own size (their products want the rows together).
    const uint8_t* raw = entry.file->read_uncached(*entry.info, offset, bytes, s.direct);
    const int64_t slice_elements = job.factor != nullptr ? kGptqJobElements : kJobElements;
    for (const RowRange& r : split_rows(job.rows.end - job.rows.begin, cols, slice_elements)) {
      Job slice = job;
      slice.rows = {job.rows.begin + r.begin, job.rows.begin + r.end};
      slice.out_row = job.out_row + r.begin;
      convert_and_quantize(slice, raw + static_cast<size_t>(r.begin * cols) * in_elem, s);
    }
  }

 private:
  // The job's rows, as the checkpoint stores them at `raw`: integer tensors copied as they are, float
  // ones converted to float32 and quantized (or stored in their output dtype).
  void convert_and_quantize(const Job& job, const uint8_t* raw, Scratch& s) const {
    const OutputTensor& t = *job.tensor;
    const size_t n = static_cast<size_t>((job.rows.end - job.rows.begin) * t.cols());
    const size_t in_elem = dtype_size(t.source_dtype);
    if (!is_float(t.source_dtype)) {
      writer_.write_range(t.name, static_cast<uint64_t>(job.out_row * t.cols()) * in_elem, {raw, n * in_elem});
      return;
    }
    s.values.resize(n);
    size_t bad;
    if (kernel_ == KernelPath::kSimd) {
      bad = kernels::convert_to_f32_checked(t.source_dtype, raw, n, s.values.data());
    } else {
      load_as_f32_scalar(t.source_dtype, raw, n, s.values.data());
      bad = kernels::first_non_finite(s.values.data(), n);
    }
    quantize_values(job, s, bad);
  }

  // s.values holds the job's rows as float32, the first non-finite one at `bad` (n: none): refused, or
  // rounded to the output dtype (which can overflow to infinity, so checked again) and written.
  void quantize_values(const Job& job, Scratch& s, size_t bad) const {
    const OutputTensor& t = *job.tensor;
    const int64_t cols = t.cols();
    const size_t n = s.values.size();
    if (bad == n && t.float_dtype != t.source_dtype) {
      round_to_dtype(s.values.data(), n, t.float_dtype);
      bad = kernels::first_non_finite(s.values.data(), n);
    }
    if (bad != n)
      fail_input("tensor '{}': value at row {}, column {} is {}; refusing to quantize non-finite weights",
                 t.sources[job.source], job.rows.begin + static_cast<int64_t>(bad) / cols,
                 static_cast<int64_t>(bad) % cols, s.values[bad]);
    if (t.quant) write_quantized(job, s, n);
    else write_float(job, s, n);
  }

  void write_float(const Job& job, Scratch& s, size_t n) const {
    const OutputTensor& t = *job.tensor;
    const size_t elem = dtype_size(t.float_dtype);
    s.float_out.resize(n * elem);
    store_as(s.values.data(), n, t.float_dtype, s.float_out.data());
    writer_.write_range(t.name, static_cast<uint64_t>(job.out_row * t.cols()) * elem, s.float_out);
  }

  void write_quantized(const Job& job, Scratch& s, size_t n) const {
    const OutputTensor& t = *job.tensor;
    const int bits = t.quant->bits, group = t.quant->group_size;
    const int64_t cols = t.cols(), rows = job.rows.end - job.rows.begin;
    const size_t words_per_row = static_cast<size_t>(cols * bits / 32);
    const size_t groups_per_row = static_cast<size_t>(cols / group);
    s.packed.resize(rows * words_per_row);
    s.scales.resize(rows * groups_per_row);
    s.biases.resize(rows * groups_per_row);
    if (job.factor != nullptr) {
      gptq_quantize_rows(*job.factor, s.values.data(), static_cast<size_t>(rows), bits, group, t.float_dtype,
                         s.packed.data(), s.scales.data(), s.biases.data(), s.gptq);
    } else if (kernel_ == KernelPath::kSimd) {
      kernels::affine_quantize(s.values.data(), rows, cols, bits, group, s.packed.data(), s.scales.data(),
                               s.biases.data());
    } else {
      for (int64_t r = 0; r < rows; ++r)
        kernels::quantize_row_reference(s.values.data() + r * cols, cols, bits, group,
                               s.packed.data() + r * words_per_row, s.scales.data() + r * groups_per_row,
                               s.biases.data() + r * groups_per_row);
    }
    const size_t elem = dtype_size(t.float_dtype);
    const size_t ngroups = s.scales.size();
    s.scales_out.resize(ngroups * elem);
    s.biases_out.resize(ngroups * elem);
    store_as(s.scales.data(), ngroups, t.float_dtype, s.scales_out.data());
    store_as(s.biases.data(), ngroups, t.float_dtype, s.biases_out.data());
    const auto* packed = reinterpret_cast<const uint8_t*>(s.packed.data());
    writer_.write_range(t.module + ".weight", static_cast<uint64_t>(job.out_row) * words_per_row * 4,
                        {packed, s.packed.size() * 4});
    writer_.write_range(t.module + ".scales", static_cast<uint64_t>(job.out_row) * groups_per_row * elem,
                        s.scales_out);
    writer_.write_range(t.module + ".biases", static_cast<uint64_t>(job.out_row) * groups_per_row * elem,
                        s.biases_out);
    (void)n;
  }

  ValueSource source_;
  io::SafetensorsWriter& writer_;
  KernelPath kernel_;
};

// The jobs of one source of one tensor: the unit GPTQ rounds with one factor.
struct SourceJobs {
  const OutputTensor* tensor;
  size_t source;
  std::vector<Job> jobs;
};

uint64_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : UINT64_MAX;
}

int64_t element_count(const SourceTensor& t) {
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;
  return n;
}

std::vector<SourceJobs> make_jobs(const QuantPlan& plan, const std::map<std::string, int64_t>& source_elements,
                                  const RoundingOptions& rounding, bool uncached) {
  std::vector<SourceJobs> units;
  for (const auto& t : plan.tensors) {
    const int64_t cols = t.shape.empty() ? 1 : t.cols();
    int64_t out_row = 0;
    for (size_t s = 0; s < t.sources.size(); ++s) {
      const int64_t rows = source_elements.at(t.sources[s]) / std::max<int64_t>(cols, 1);
      SourceJobs& unit = units.emplace_back(SourceJobs{&t, s, {}});
      const int64_t elements = uses_gptq(t, rounding) ? kGptqJobElements : uncached ? kUncachedJobElements : kJobElements;
      for (const RowRange& r : split_rows(rows, cols, elements)) unit.jobs.push_back({&t, s, r, out_row + r.begin});
      out_row += rows;
    }
  }
  return units;
}

// The method a file records: the calibrated method its modules were rounded with, "mixed" when a plan
// gave them different ones; none when every module was rounded to nearest, so such a file stays byte for
// byte what mlx-lm writes.
std::optional<std::string> recorded_method(const QuantPlan& plan, const RoundingOptions& rounding) {
  std::set<RoundingMethod> used;
  for (const auto& t : plan.tensors)
    if (uses_gptq(t, rounding)) used.insert(method_of(t, rounding));
  if (used.empty()) return std::nullopt;
  return used.size() == 1 ? std::string(rounding_method_name(*used.begin())) : std::string("mixed");
}

std::map<std::string, std::string> output_metadata(const QuantPlan& plan, const RoundingOptions& rounding) {
  std::map<std::string, std::string> m{{"format", "mlx"}};
  if (const auto method = recorded_method(plan, rounding)) m["quantization_method"] = *method;
  for (const auto& t : plan.tensors)
    if (t.quant && !kernels::is_mlx_bits(t.quant->bits))
      m["quantlab_extension"] = "7-bit affine: MLX layout, but mlx-lm itself refuses 7-bit";
  return m;
}

// GPTQ sources in batches of one distinct factor per thread (sources whose factor is the same — q/k/v,
// gate/up — share one): the batch's factors first — one per thread when there are several (a MoE
// layer's experts: many small factors), else the one factor's products on the whole pool — then all the
// batch's rows through `run`. One batch of factors in memory at a time. Returns the number of
// factorisations.
template <typename RunJobs>
size_t run_gptq_sources(const std::vector<SourceJobs*>& sources, const io::ModelWeights& weights,
                        const io::ModelWeights* base, const RoundingOptions& rounding, ThreadPool& pool,
                        const RunJobs& run) {
  struct Entry {
    const SourceJobs* source;
    std::shared_ptr<const GptqFactor> factor;  // set, or computed in this batch by entry `owner`
    size_t owner = 0;
  };
  const auto same = [&](const SourceJobs& a, const SourceJobs& b) {
    return shares_factor(*a.tensor, a.source, *b.tensor, b.source, rounding);
  };
  std::vector<Entry> previous;
  size_t factorisations = 0;
  for (size_t next = 0; next < sources.size();) {
    std::vector<Entry> batch;
    std::vector<size_t> computed;  // entries whose factor this batch computes
    for (; next < sources.size(); ++next) {
      Entry e{sources[next], nullptr, 0};
      for (const Entry& p : previous)
        if (!e.factor && same(*p.source, *e.source)) e.factor = p.factor;
      bool shared = e.factor != nullptr;
      for (size_t i = 0; i < batch.size() && !shared; ++i)
        if (same(*batch[i].source, *e.source)) {
          e.factor = batch[i].factor;
          e.owner = batch[i].factor ? i : batch[i].owner;
          shared = true;
        }
      if (!shared && computed.size() == pool.size()) break;
      if (!shared) {
        e.owner = batch.size();
        computed.push_back(batch.size());
      }
      batch.push_back(e);
    }
    const auto compute = [&](size_t i, ThreadPool& on) {
      const SourceJobs& s = *batch[i].source;
      batch[i].factor = std::make_shared<const GptqFactor>(rounding_factor(*s.tensor, s.source, weights, base, rounding, on));
    };
    if (computed.size() == 1) {
      compute(computed[0], pool);
    } else {
      pool.parallel_for(computed.size(), 1, [&](size_t begin, size_t end, size_t) {
        ThreadPool this_thread(1);
        for (size_t i = begin; i < end; ++i) compute(computed[i], this_thread);
      });
    }
    factorisations += computed.size();
    std::vector<Job> jobs;
    for (Entry& e : batch) {
      if (!e.factor) e.factor = batch[e.owner].factor;
      for (Job job : e.source->jobs) {
        job.factor = e.factor.get();
        jobs.push_back(job);
      }
    }
    run(jobs);
    previous = std::move(batch);
  }
  return factorisations;
}

// Sources that read the same routed inputs (expert e of gate_proj and of up_proj) next to each other, so
// that run_gptq_sources finds their shared factor in the same batch instead of 128 sources later; other
// sources keep their order.
void interleave_shared_inputs(std::vector<SourceJobs*>& sources, const RoundingOptions& rounding) {
  std::map<const RoutedInputs*, size_t> first_of;
  std::vector<std::tuple<size_t, size_t, size_t>> keys;  // (group, source, position)
  for (size_t i = 0; i < sources.size(); ++i) {
    const auto routed = rounding.routed_inputs.find(sources[i]->tensor->module);
    if (routed == rounding.routed_inputs.end()) {
      keys.emplace_back(i, 0, i);
      continue;
    }
    const size_t group = first_of.try_emplace(routed->second.get(), i).first->second;
    keys.emplace_back(group, sources[i]->source, i);
  }
  std::sort(keys.begin(), keys.end());
  std::vector<SourceJobs*> ordered;
  for (const auto& key : keys) ordered.push_back(sources[std::get<2>(key)]);
  sources = std::move(ordered);
}

// What quantlab_plan.json says about the rounding: the method and its settings.
nlohmann::ordered_json rounding_method_record(const RoundingOptions& r, const QuantizeReport& report) {
  const bool delta = plan_uses(report.plan, r, RoundingMethod::kDelta);
  nlohmann::ordered_json j = {{"damp", r.gptq.damp},
                              {"act_order", r.gptq.act_order},
                              {"vocab_prior", r.vocabulary_moments.empty() ? 0.0 : r.vocab_prior},
                              {"sequential", r.sequential},
                              {"gptq_tensors", report.gptq_tensors},
                              {"factorisations", report.gptq_factorisations}};
  if (delta) {
    j["delta_weight"] = r.delta_weight;
    if (r.delta_gram) j["adapter"] = r.adapter_dir;
    else j["base"] = r.base_dir;
  }
  return j;
}

// Each module's method as it was rounded, beside its setting, so that `quantize --plan` with this file
// and the same statistics rounds every module the same way (a module a calibrated method could not
// reach — an embedding table, no statistics — is written "rtn").
void record_module_methods(const QuantPlan& plan, const RoundingOptions& rounding, nlohmann::ordered_json& record) {
  if (!record.contains("modules") || !record["modules"].is_object()) return;
  for (const auto& t : plan.tensors) {
    auto entry = record["modules"].find(t.module);
    if (!t.quant || entry == record["modules"].end() || !entry->is_object()) continue;
    if (uses_gptq(t, rounding)) (*entry)["method"] = rounding_method_name(method_of(t, rounding));
    else if (entry->contains("method") || method_of(t, rounding) != RoundingMethod::kRtn) (*entry)["method"] = "rtn";
  }
}

// Modules whose plan names a calibrated method that cannot be applied to them: said, not hidden.
void note_unrounded_methods(const RoundingOptions& rounding, QuantPlan& plan) {
  for (const auto& t : plan.tensors)
    if (t.quant && t.method && *t.method != RoundingMethod::kRtn && !uses_gptq(t, rounding))
      plan.notes.push_back(fmt::format("note: {} is rounded to nearest, not with its plan's {}: {}", t.module,
                                       rounding_method_name(*t.method),
                                       t.module.find("embed_tokens") != std::string::npos
                                           ? "an embedding table is looked up, not multiplied by an input"
                                           : "the statistics have no second moments for it"));
}

}  // namespace

std::vector<RowRange> split_rows(int64_t rows, int64_t cols, int64_t target_elems) {
  std::vector<RowRange> out;
  const int64_t step = std::max<int64_t>(1, target_elems / std::max<int64_t>(cols, 1));
  for (int64_t r = 0; r < rows; r += step) out.push_back({r, std::min(rows, r + step)});
  if (rows == 0) out.push_back({0, 0});
  return out;
}

void copy_side_files(const std::string& in_dir, const std::string& out_dir) {
  for (const auto& e : fs::directory_iterator(in_dir)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    if (e.path().extension() == ".safetensors" || name == "model.safetensors.index.json" ||
        name == "config.json" || name.rfind('.', 0) == 0)
      continue;
    std::error_code ec;
    fs::copy_file(e.path(), fs::path(out_dir) / name, fs::copy_options::overwrite_existing, ec);
    if (ec) fail(ErrorKind::kIo, "{}: cannot copy: {}", e.path().string(), ec.message());
  }
}

namespace {

// What a conversion reads: a checkpoint's tensors, or generated values, with the config they belong to.
struct ConversionInput {
  const io::ModelConfig& config;
  std::vector<SourceTensor> sources;
  ValueSource values;
  std::string side_files_from;                    // copy its tokenizer and other files; empty: none
  std::map<std::string, std::string> side_files;  // or write these (name -> contents)
};

// Runs every job of the plan: round-to-nearest work all at once, then the GPTQ sources.
void run_all_jobs(const ConversionInput& in, const QuantizeOptions& options, const QuantPlan& plan,
                  io::SafetensorsWriter& writer, ThreadPool& pool, QuantizeReport& report) {
  const RoundingOptions& rounding = options.rounding;
  const std::optional<io::ModelWeights> base = open_delta_base(plan, rounding);
  std::map<std::string, int64_t> elements;
  for (const SourceTensor& t : in.sources) elements[t.name] = element_count(t);
  for (const auto& t : plan.tensors) {
    for (const auto& s : t.sources) report.input_bytes += elements.at(s) * dtype_size(t.source_dtype);
    report.gptq_tensors += uses_gptq(t, rounding);
  }
  ValueSource values = in.values;
  values.uncached = in.values.weights != nullptr &&
                    options.uncached_reads.value_or(report.input_bytes > physical_memory_bytes() / 2);
  std::vector<SourceJobs> units = make_jobs(plan, elements, rounding, values.uncached);
  size_t job_count = 0;
  for (const auto& u : units) job_count += u.jobs.size();
  Progress progress("quantize", job_count, report.input_bytes, options.show_progress);
  std::vector<Scratch> scratch(pool.size());
  ModelQuantizer quantizer(values, writer, options.kernel);
  const auto run = [&](const std::vector<Job>& jobs) {
    pool.parallel_for(jobs.size(), 1, [&](size_t begin, size_t end, size_t worker) {
      for (size_t j = begin; j < end; ++j) {
        quantizer.run_job(jobs[j], scratch[worker]);
        const auto& t = *jobs[j].tensor;
        progress.advance(1, static_cast<uint64_t>((jobs[j].rows.end - jobs[j].rows.begin) * t.cols()) *
                                dtype_size(t.source_dtype));
      }
    });
  };
  std::vector<Job> nearest;
  std::vector<SourceJobs*> calibrated;
  for (auto& u : units) {
    if (uses_gptq(*u.tensor, rounding)) calibrated.push_back(&u);
    else nearest.insert(nearest.end(), u.jobs.begin(), u.jobs.end());
  }
  run(nearest);
  if (!calibrated.empty()) {
    if (in.values.weights == nullptr) fail(ErrorKind::kUsage, "calibrated rounding needs a checkpoint to read");
    interleave_shared_inputs(calibrated, rounding);
    report.gptq_factorisations =
        run_gptq_sources(calibrated, *in.values.weights, base ? &*base : nullptr, rounding, pool, run);
  }
  progress.finish();
}

QuantizeReport convert_model(const ConversionInput& in, const std::string& out_dir, const QuantizeOptions& options,
                             ThreadPool& pool) {
  const auto start = std::chrono::steady_clock::now();
  QuantizeReport report;
  report.plan = make_quant_plan(in.config, in.sources, options.plan);
  note_unrounded_methods(options.rounding, report.plan);
  io::AtomicOutputDir out(out_dir, options.overwrite);
  const RoundingOptions& rounding = options.rounding;
  {
    io::SafetensorsWriter writer(out.temp_path(), report.plan.output_specs(), options.max_shard_bytes,
                                 output_metadata(report.plan, rounding),
                                 options.uncached_writes.value_or(true) ? io::WriteMode::kDirect : io::WriteMode::kCached);
    run_all_jobs(in, options, report.plan, writer, pool, report);
    writer.finish(report.plan.total_parameters());
    report.output_bytes = writer.total_tensor_bytes();
    report.shards = writer.shard_names();
  }
  std::ofstream(out.file("config.json"))
      << io::config_for_output(in.config, report.plan.output_dtype, report.plan.quantization).dump(4) << "\n";
  if (!in.side_files_from.empty()) copy_side_files(in.side_files_from, out.temp_path());
  for (const auto& [name, contents] : in.side_files) io::write_file_atomically(out.file(name), contents);
  const std::optional<std::string> method = recorded_method(report.plan, rounding);
  if (options.write_plan_file || method) {
    nlohmann::ordered_json record = options.plan_record.is_null() ? plan_file_json(report.plan) : options.plan_record;
    if (method) {
      record["quantization_method"] = *method;
      record["rounding"] = rounding_method_record(rounding, report);
    }
    record_module_methods(report.plan, rounding, record);
    io::write_file_atomically(out.file("quantlab_plan.json"), record.dump(2) + "\n");
  }
  out.commit();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace

QuantizeReport quantize_model(const std::string& in_dir, const std::string& out_dir,
                              const QuantizeOptions& options, ThreadPool& pool) {
  const io::ModelConfig config = io::load_model_config(in_dir);
  const io::ModelWeights weights = io::ModelWeights::open(in_dir);
  io::check_output_not_input(in_dir, out_dir);
  return convert_model({config, source_tensors(weights), {&weights, nullptr}, in_dir, {}}, out_dir, options, pool);
}

QuantizeReport quantize_generated(const GeneratedModel& model, const std::string& out_dir,
                                  const QuantizeOptions& options, ThreadPool& pool) {
  if (options.rounding.method != RoundingMethod::kRtn)
    fail(ErrorKind::kUsage, "generated weights are rounded to nearest only (no calibration inputs exist for them)");
  return convert_model({model.config, model.sources, {nullptr, &model.fill}, {}, model.side_files}, out_dir, options,
                       pool);
}

}  // namespace quantlab::quant
