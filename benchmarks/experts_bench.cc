// What profiling experts costs over the forward pass it observes (issue 16, docs/BENCHMARKS.md):
// `quantlab experts --text` (profile_experts: the routing hook counting tokens, router weight and
// REAP saliency = weight × ‖expert output‖ per routed token) against the same chunks run through a
// plain Session without the hook, alternately, best of --repeats each. The model is a synthetic
// Qwen3-30B-A3B of --layers layers at --bits (cached under --work), with the bundled tool-calling
// tokenizer copied in (its ids are valid in the larger vocabulary).
//
//   experts_bench [--layers 4] [--bits 4] [--tokens 2048] [--threads 2] [--repeats 3] [--work DIR]
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "bench_inputs.h"
#include "analysis/expert_profile.h"
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

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string prepare_model(const std::string& work, int layers, int bits, ThreadPool& pool) {
  const std::string f16 = fmt::format("{}/syn-l{}-bf16", work, layers), q = fmt::format("{}/syn-l{}-q{}", work, layers, bits);
  if (!fs::exists(q + "/config.json")) {
    if (!fs::exists(f16 + "/config.json"))
    {
      quant::SynthOptions so;
      so.show_progress = false;
      quant::synthesize_model(quant::synth_config("qwen3-30b-a3b", layers, DType::kBF16), f16, so, pool);
    }
    quant::QuantizeOptions o;
    o.plan.bits = bits;
    o.show_progress = false;
    quant::quantize_model(f16, q, o, pool);
    fs::remove_all(f16);
  }
  benchmarks::copy_tokenizer(q);
  return q;
}


}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Expert profiling cost over the plain forward pass"};
  int layers = 4, bits = 4, repeats = 3;
  size_t tokens = 2048, threads = 2;
  std::string work = "/tmp/quantlab-experts-bench";
  app.add_option("--layers", layers);
  app.add_option("--bits", bits);
  app.add_option("--tokens", tokens);
  app.add_option("--threads", threads);
  app.add_option("--repeats", repeats);
  app.add_option("--work", work);
  CLI11_PARSE(app, argc, argv);
  fs::create_directories(work);
  ThreadPool pool(threads);
  const std::string model = prepare_model(work, layers, bits, pool);
  const std::string text = benchmarks::prepare_text(work, tokens);
  const auto bandwidth = bench::measure_read_bandwidth(pool, size_t{256} << 20, 3);
  double best_plain = 1e30, best_profile = 1e30;
  size_t counted = 0;
  for (int r = 0; r < repeats; ++r) {
    auto start = Clock::now();
    {
      const auto chat = chat::ChatModel::open(model);
      const auto chunks = analysis::encode_text_chunks(text, 256, *chat);
      model::Session session(chat->model(), pool, {257, 512});
      for (const auto& c : chunks) {
        session.reset();
        session.forward(c);
      }
    }
    best_plain = std::min(best_plain, since(start));
    start = Clock::now();
    analysis::ExpertProfileOptions o;
    o.model_dir = model;
    o.text_path = text;
    o.show_progress = false;
    counted = analysis::profile_experts(o, pool).tokens;
    best_profile = std::min(best_profile, since(start));
  }
  fmt::print("model {} ({} layers, {}-bit), {} tokens in chunks of 256, {} threads, bandwidth {:.1f} GB/s\n", model,
             layers, bits, counted, threads, bandwidth.read_gb_per_s);
  fmt::print("plain forward   {:.3f} s ({:.1f} tok/s)\nprofile_experts {:.3f} s ({:.1f} tok/s)\noverhead        {:+.1f} %\n",
             best_plain, counted / best_plain, best_profile, counted / best_profile,
             100 * (best_profile / best_plain - 1));
  return 0;
}
