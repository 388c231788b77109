// Whole-model speed of the engine, for docs/BENCHMARKS.md: a synthetic checkpoint of a published shape
// (quant::synthesize_model, float16) and its 8/6/4-bit MLX quantizations, each measured for
//   - load to first token (Model::load + a one-token prompt + sampling; warm page cache),
//   - decode tokens/s beside the memory-bandwidth roofline (weight bytes read per token / bandwidth) and
//     the decode kernel's own limit (one core's in-L2 matvec rate x threads); "% lower roof" divides by
//     whichever of the two is lower,
//   - prefill tokens/s of a long prompt beside the measured f32 FMA peak (best of --repeats on a session
//     whose buffers one earlier prompt has touched; that first prompt's rate is reported too),
//   - runtime memory (weights mapped and resident, KV cache, scratch, the matmul kernels' workspace) and a
//     per-phase time split.
// Bandwidth and FMA peak are measured in the same run on the same thread pool; bandwidth right before
// and after each decode run.
//
//   engine_bench [--like qwen3-0.6b] [--layers N] [--bits 16,8,6,4] [--threads 2] [--prompt 512]
//                [--decode 32] [--repeats 3] [--work DIR] [--json FILE]
// Models are cached under --work (default /tmp/quantlab-engine-bench) and reused by later runs.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <vector>

#include "bench/machine_probe.h"
#include "bench/page_cache.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/probes.h"
#include "model/generation.h"
#include "model/model.h"
#include "model/session.h"
#include "quant/quantizer.h"
#include "quant/synth.h"

namespace {

namespace fs = std::filesystem;
using namespace quantlab;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double measure_fma_gflops(ThreadPool& pool) {
  const size_t iterations = 1 << 24;
  double best = 0;
  for (int pass = 0; pass < 3; ++pass) {
    std::vector<float> sink(pool.size());
    const auto start = Clock::now();
    pool.run_on_all([&](size_t w) { sink[w] = kernels::fma_probe(iterations, 1.0f + w); });
    best = std::max(best, kernels::fma_probe_flops(iterations) * pool.size() / 1e9 / since(start));
  }
  return best;
}

// FLOPs of the matrix products for one token in prefill (the output head runs once per prompt, so it
// is left out), plus attention at an average context of `context / 2`.
double prefill_flops_per_token(const model::Model& m, size_t context) {
  uint64_t macs = 0;
  const model::ModelDims& d = m.dims();
  for (const model::Layer& l : m.layers()) {
    const auto& a = l.attention;
    macs += a.q.weight.rows * a.q.weight.cols + a.k.weight.rows * a.k.weight.cols +
            a.v.weight.rows * a.v.weight.cols + a.o.weight.rows * a.o.weight.cols;
    if (l.is_moe) macs += d.experts * d.hidden + d.experts_per_token * 3 * d.moe_intermediate * d.hidden;
    else macs += 3 * d.intermediate * d.hidden;
    macs += 2 * d.heads * d.head_dim * (context / 2);  // q.k and p.v
  }
  return 2.0 * static_cast<double>(macs);
}

// The decode kernel's own speed limit, in GB/s of weights: one core's matvec rate over the first layer's
// q projection cut to ~512 KB (so it stays in that core's L2: no memory traffic), times the thread
// count. When the bandwidth probe reads higher than this, decode is bound by the unpacking, not by DRAM.
double measure_kernel_roof_gbs(const model::Model& m, size_t threads) {
  const kernels::MatrixView& q = m.layers().front().attention.q.weight;
  const size_t row_bytes = std::max<size_t>(1, kernels::stored_bytes(q.row_slice(0, 1)));
  const kernels::MatrixView w = q.row_slice(0, std::clamp<size_t>(512 * 1024 / row_bytes, 1, q.rows));
  std::vector<float> x(w.cols, 0.5f), y(w.rows);
  ThreadPool one(1);
  for (int i = 0; i < 10; ++i) kernels::matvec(w, x.data(), y.data(), one);  // into L2
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    const int calls = 200;
    const auto start = Clock::now();
    for (int i = 0; i < calls; ++i) kernels::matvec(w, x.data(), y.data(), one);
    best = std::max(best, static_cast<double>(kernels::stored_bytes(w)) * calls / 1e9 / since(start));
  }
  return best * static_cast<double>(threads);
}

std::vector<int32_t> prompt_ids(size_t n, size_t vocab) {
  std::vector<int32_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 7919 + 13) % std::min<size_t>(vocab, 150000));
  return ids;
}

struct Options {
  std::string like = "qwen3-0.6b", work = "/tmp/quantlab-engine-bench", bits = "16,8,6,4", json_out;
  int64_t layers = 0;
  size_t threads = 2, prompt = 512, decode = 32;
  int repeats = 3;
};

std::string ensure_model(const Options& o, int bits, ThreadPool& pool) {
  const std::string base = fmt::format("{}/{}-L{}-f16", o.work, o.like, o.layers);
  if (!fs::exists(base + "/config.json")) {
    quant::SynthOptions s;
    s.dtype = DType::kF16;
    s.show_progress = false;
    const auto layers = o.layers > 0 ? std::optional<int64_t>(o.layers) : std::nullopt;
    quant::synthesize_model(quant::synth_config(o.like, layers, DType::kF16), base, s, pool);
  }
  if (bits >= 16) return base;
  const std::string q = fmt::format("{}/{}-L{}-q{}", o.work, o.like, o.layers, bits);
  if (!fs::exists(q + "/config.json")) {
    quant::QuantizeOptions qo;
    qo.plan.bits = bits;
    qo.plan.group_size = 64;
    qo.show_progress = false;
    quant::quantize_model(base, q, qo, pool);
  }
  return q;
}

nlohmann::ordered_json run_one(const std::string& dir, const Options& o, ThreadPool& pool,
                               const bench::BandwidthProbe& probe, double fma_peak) {
  // Every file read once, so that neither the timed load nor a prefill touching experts that a short
  // prompt never routed to waits on the disk (MoE prefill read cold experts at 28-38 % of the FMA peak).
  bench::warm_page_cache(bench::model_files(dir));
  // Load to first token, after one untimed load.
  { const auto warm = model::Model::load(dir); model::Session s(warm, pool); s.forward(prompt_ids(1, warm.dims().vocab)); }
  const auto t0 = Clock::now();
  const model::Model m = model::Model::load(dir);
  model::Session first(m, pool);
  model::argmax(first.forward(prompt_ids(1, m.dims().vocab)));
  const double load_to_first = since(t0);

  // Decode: best of `repeats` runs, each bracketed by bandwidth probes; the roofline uses the higher
  // probe around the best run, so a memory-bandwidth swing on this shared machine (40-60 GB/s seen)
  // cannot flatter the ratio.
  model::Timings dt;
  double decode_tps = 0, bandwidth = 0;
  for (int rep = 0; rep < o.repeats; ++rep) {
    const double before = probe.measure(3).read_gb_per_s;
    model::Session decode(m, pool);
    model::GenerationOptions g;
    g.max_tokens = o.decode + 1;
    model::generate(decode, prompt_ids(16, m.dims().vocab), g);
    const double after = probe.measure(3).read_gb_per_s;
    const model::Timings t = decode.timings();
    if (t.decode_tokens / t.decode_seconds > decode_tps) {
      decode_tps = t.decode_tokens / t.decode_seconds;
      bandwidth = std::max(before, after);
      dt = t;
    }
  }
  const double roofline_tps = bandwidth * 1e9 / static_cast<double>(m.bytes_read_per_token());
  const double kernel_roof = measure_kernel_roof_gbs(m, pool.size());
  const double kernel_roof_tps = kernel_roof * 1e9 / static_cast<double>(m.bytes_read_per_token());

  // Prefill: the first prompt of a fresh session also faults in its KV cache and scratch (page faults
  // were ~5 % of a MoE prefill's profile); it is reported as "first", and the best of `repeats` further
  // prompts on the same session (reset between them, as a server or `bench` reuses its session) counts.
  model::Session prefill(m, pool);
  const std::vector<int32_t> prompt = prompt_ids(o.prompt, m.dims().vocab);
  prefill.forward(prompt);
  const double first_prefill_tps = prefill.timings().prefill_tokens / prefill.timings().prefill_seconds;
  model::Timings pt = prefill.timings();
  for (int rep = 0; rep < o.repeats; ++rep) {
    prefill.reset();
    prefill.reset_timings();
    prefill.forward(prompt);
    const model::Timings t = prefill.timings();
    if (rep == 0 || t.prefill_seconds < pt.prefill_seconds) pt = t;
  }
  const double prefill_tps = pt.prefill_tokens / pt.prefill_seconds;
  const double gflops = prefill_flops_per_token(m, o.prompt) * prefill_tps / 1e9;
  const model::MemoryReport mem = prefill.memory();

  nlohmann::ordered_json phases;
  for (size_t p = 0; p < static_cast<size_t>(model::Phase::kCount); ++p)
    phases[std::string(model::phase_name(static_cast<model::Phase>(p)))] =
        fmt::format("decode {:.1f}% / prefill {:.1f}%", 100 * dt.phase_seconds[p] / (dt.decode_seconds + dt.prefill_seconds),
                    100 * pt.phase_seconds[p] / pt.prefill_seconds);
  return {{"model", dir},
          {"load_to_first_token_s", load_to_first},
          {"decode_tok_s", decode_tps},
          {"bandwidth_gbs", bandwidth},
          {"bytes_per_token", m.bytes_read_per_token()},
          {"roofline_tok_s", roofline_tps},
          {"decode_roofline_fraction", decode_tps / roofline_tps},
          {"kernel_roof_gbs", kernel_roof},
          {"kernel_roof_tok_s", kernel_roof_tps},
          {"decode_lower_roof_fraction", decode_tps / std::min(roofline_tps, kernel_roof_tps)},
          {"prefill_tok_s", prefill_tps},
          {"first_prefill_tok_s", first_prefill_tps},
          {"prefill_gflops", gflops},
          {"prefill_peak_fraction", gflops / fma_peak},
          {"memory", {{"weights_mapped", mem.weights_mapped}, {"weights_resident", mem.weights_resident},
                      {"weights_copied", mem.weights_copied}, {"kv_cache", mem.kv_cache}, {"scratch", mem.scratch},
                      {"kernel_workspace", kernels::matmul_workspace_bytes()}}},
          {"phases", phases}};
}

int run(const Options& o) {
  ThreadPool pool(o.threads);
  const double fma_peak = measure_fma_gflops(pool);
  const bench::BandwidthProbe probe(pool);  // 1 GiB, placed once, read before and after each decode run
  fmt::print("{} threads, target {}: f32 FMA peak {:.1f} GFLOP/s; decode best of {}\n", pool.size(),
             kernels::active_target(), fma_peak, o.repeats);
  fmt::print("| model | load->1st tok (s) | decode tok/s | GB/s probe | roofline tok/s | % roofline | kernel GB/s | "
             "% lower roof | prefill tok/s | first prefill tok/s | GFLOP/s | % FMA peak | weights MB | KV MB | "
             "scratch MB | kernel workspace MB |\n"
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  nlohmann::ordered_json all = {{"threads", pool.size()}, {"target", kernels::active_target()},
                                {"fma_peak_gflops", fma_peak}, {"runs", nlohmann::json::array()}};
  for (const std::string& b : CLI::detail::split(o.bits, ',')) {
    const std::string dir = ensure_model(o, std::stoi(b), pool);
    const auto r = run_one(dir, o, pool, probe, fma_peak);
    fmt::print("| {} | {:.3f} | {:.2f} | {:.1f} | {:.2f} | {:.0f}% | {:.1f} | {:.0f}% | {:.1f} | {:.1f} | {:.1f} | {:.0f}% | {:.1f} | {:.1f} | {:.1f} | {:.1f} |\n",
               fs::path(dir).filename().string(), r["load_to_first_token_s"].get<double>(), r["decode_tok_s"].get<double>(),
               r["bandwidth_gbs"].get<double>(), r["roofline_tok_s"].get<double>(), 100 * r["decode_roofline_fraction"].get<double>(),
               r["kernel_roof_gbs"].get<double>(), 100 * r["decode_lower_roof_fraction"].get<double>(),
               r["prefill_tok_s"].get<double>(), r["first_prefill_tok_s"].get<double>(), r["prefill_gflops"].get<double>(),
               100 * r["prefill_peak_fraction"].get<double>(), r["memory"]["weights_mapped"].get<double>() / 1e6,
               r["memory"]["kv_cache"].get<double>() / 1e6, r["memory"]["scratch"].get<double>() / 1e6,
               r["memory"]["kernel_workspace"].get<double>() / 1e6);
    all["runs"].push_back(r);
  }
  if (!o.json_out.empty()) std::ofstream(o.json_out) << all.dump(2) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"quantlab engine benchmark: decode/prefill speed against the machine's roofline"};
  Options o;
  app.add_option("--like", o.like, "Preset shape (quant::synth_preset_names)");
  app.add_option("--layers", o.layers, "Layer count (0 = the preset's)");
  app.add_option("--bits", o.bits, "Comma-separated: 16 (= float16) and/or quantized bit widths");
  app.add_option("--threads", o.threads, "Thread pool size");
  app.add_option("--prompt", o.prompt, "Prefill prompt length");
  app.add_option("--decode", o.decode, "Decode tokens to time");
  app.add_option("--repeats", o.repeats, "Decode runs and warm prefills per model (the best counts)");
  app.add_option("--work", o.work, "Directory caching the synthetic models");
  app.add_option("--json", o.json_out, "Also write the results as JSON");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const quantlab::Error& e) {
    fmt::print(stderr, "engine_bench: {}\n", e.what());
    return e.exit_code();
  }
}
