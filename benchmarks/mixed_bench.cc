// What the mixed-precision pipeline costs against quantizing (issue 15, docs/BENCHMARKS.md), on a
// synthetic Qwen3-30B-A3B of --layers layers in bfloat16 (cached under --work, with the bundled
// tool-calling tokenizer copied in). Phases, each timed and with its own peak RSS (VmHWM reset between
// phases through /proc/self/clear_refs):
//   quantize 4-bit g64 (the yardstick of sensitivity), a plain forward pass over the calibration text
//   (the yardstick of calibration), calibrate (--text, chunks of 256), sensitivity (candidates
//   2,3,4,5,6,8 g64), measured gains (one probe per tensor on --gain-queries queries of seed5), allocate.
//
//   mixed_bench [--layers 4] [--tokens 2048] [--gain-queries 1] [--threads 2] [--work DIR]
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>

#include "bench_inputs.h"
#include "analysis/allocation.h"
#include "analysis/calibration.h"
#include "analysis/module_gain.h"
#include "analysis/sensitivity.h"
#include "analysis/suite_prompts.h"
#include "bench/machine_probe.h"
#include "chat/chat_model.h"
#include "core/thread_pool.h"
#include "model/session.h"
#include "quant/quantizer.h"
#include "quant/synth.h"

namespace {

namespace fs = std::filesystem;
using namespace quantlab;
using Clock = std::chrono::steady_clock;

const fs::path kData = benchmarks::kToolCalling;

std::string prepare_model(const std::string& work, int layers, ThreadPool& pool) {
  const std::string dir = fmt::format("{}/syn-l{}-bf16", work, layers);
  if (!fs::exists(dir + "/config.json")) {
    quant::SynthOptions so;
    so.show_progress = false;
    quant::synthesize_model(quant::synth_config("qwen3-30b-a3b", layers, DType::kBF16), dir, so, pool);
  }
  benchmarks::copy_tokenizer(dir);
  return dir;
}


// Peak resident set since the last reset, in MB; reset() starts a new phase.
struct PeakRss {
  static void reset() { std::ofstream("/proc/self/clear_refs") << "5"; }
  static double mb() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
    return 0;
  }
};

struct Phase {
  std::string name;
  double seconds = 0, peak_mb = 0;
};

Phase timed(const std::string& name, const std::function<void()>& work) {
  PeakRss::reset();
  const auto start = Clock::now();
  work();
  return {name, std::chrono::duration<double>(Clock::now() - start).count(), PeakRss::mb()};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Mixed-precision pipeline cost against quantize"};
  int layers = 4;
  size_t tokens = 2048, threads = 2, gain_queries = 1;
  std::string work = "/tmp/quantlab-mixed-bench";
  app.add_option("--layers", layers);
  app.add_option("--tokens", tokens);
  app.add_option("--gain-queries", gain_queries);
  app.add_option("--threads", threads);
  app.add_option("--work", work);
  CLI11_PARSE(app, argc, argv);
  fs::create_directories(work);
  ThreadPool pool(threads);
  const std::string model = prepare_model(work, layers, pool);
  const std::string text = benchmarks::prepare_text(work, tokens);
  const std::string stats_path = work + "/stats.safetensors";
  const auto bandwidth = bench::measure_read_bandwidth(pool, size_t{256} << 20, 3);
  std::vector<Phase> phases;
  size_t calibrated_tokens = 0;
  phases.push_back(timed("quantize 4-bit g64", [&] {
    quant::QuantizeOptions q;
    q.plan.bits = 4;
    q.overwrite = true;
    q.show_progress = false;
    quant::quantize_model(model, work + "/q4", q, pool);
    fs::remove_all(work + "/q4");
  }));
  phases.push_back(timed("plain forward of the text", [&] {
    const auto chat = chat::ChatModel::open(model);
    model::Session session(chat->model(), pool, {257, 512});
    for (const auto& c : analysis::encode_text_chunks(text, 256, *chat)) {
      session.reset();
      session.forward(c);
    }
  }));
  phases.push_back(timed("calibrate --text", [&] {
    analysis::CalibrationOptions o;
    o.model_dir = model;
    o.text_path = text;
    o.show_progress = false;
    const analysis::CalibrationStats s = analysis::calibrate(o, pool);
    calibrated_tokens = s.tokens;
    analysis::write_stats(s, stats_path);
  }));
  analysis::Sensitivity sens;
  phases.push_back(timed("sensitivity 2,3,4,5,6,8", [&] {
    analysis::SensitivityOptions o;
    o.fused_dir = model;
    o.stats_path = stats_path;
    o.show_progress = false;
    sens = analysis::analyze_sensitivity(o, pool);
  }));
  phases.push_back(timed(fmt::format("gains ({} queries)", gain_queries), [&] {
    analysis::GainOptions g;
    g.fused_dir = model;
    g.suite_path = (kData / "queries/seed5.jsonl").string();
    g.tools_path = (kData / "tools.json").string();
    g.max_queries = gain_queries;
    g.max_tokens = 8;
    g.show_progress = false;
    analysis::measure_gains(g, sens, pool);
  }));
  phases.push_back(timed("allocate 3.5 bpw", [&] {
    const auto budget = static_cast<uint64_t>(3.5 * double(analysis::total_parameters(sens)) / 8);
    analysis::allocate(sens, budget, analysis::Objective::kOutput);
  }));
  fmt::print("model {} ({} layers, bf16), {} threads, {} calibration tokens, {} tensors, read bandwidth {:.1f} GB/s\n\n",
             model, layers, threads, calibrated_tokens, sens.tensors.size(), bandwidth.read_gb_per_s);
  fmt::print("| phase | seconds | x quantize | peak RSS MB |\n|---|---:|---:|---:|\n");
  for (const Phase& p : phases)
    fmt::print("| {} | {:.2f} | {:.2f} | {:.0f} |\n", p.name, p.seconds, p.seconds / phases[0].seconds, p.peak_mb);
  fmt::print("\ncalibrate / plain forward: {:.2f}\n", phases[2].seconds / phases[1].seconds);
  return 0;
}
