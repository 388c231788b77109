// Kernel benchmarks on a 2-thread pool: memory-bandwidth and FMA-peak probes first, then quantized and
// float matvec (GB/s of weight bytes and % of the measured bandwidth), matmul (GFLOP/s and % of the
// FMA peak) and the quantizer's hot loop (GB/s of f16 input). Probes run first (registration order),
// so the ratio counters of later benchmarks use numbers measured in the same run.
//
//   build-*/bin/kernels_bench [--benchmark_filter=Matvec]     (threads: QL_BENCH_THREADS, default 2;
//                                                              Highway target: QL_BENCH_TARGET=AVX2 etc.)
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/thread_pool.h"
#include "kernels/kernels.h"
#include "kernels/targets.h"
#include "kernels/probes.h"

namespace {

using quantlab::DType;
using quantlab::ThreadPool;
using quantlab::kernels::MatrixView;
using quantlab::kernels::WeightType;

ThreadPool& pool() {
  static ThreadPool p([] {
    const char* env = std::getenv("QL_BENCH_THREADS");
    return env ? static_cast<size_t>(std::atoi(env)) : size_t{2};
  }());
  return p;
}

double g_bandwidth_gbs = 0;    // measured by BM_MemoryBandwidth
double g_fma_peak_gflops = 0;  // measured by BM_FmaPeak

// Cheap deterministic fill (random enough for codes; speed matters for 150 MB matrices).
void fill_random(void* data, size_t bytes, uint64_t seed) {
  auto* p = static_cast<uint8_t*>(data);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const uint64_t v = s ^ (s >> 29);
    std::memcpy(p + i, &v, 8);
  }
}

// Values in [-0.5, 0.5), as cheaply as fill_random.
void fill_uniform(std::vector<float>& v, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>(s >> 40) * 0x1p-24f - 0.5f;
  }
}

void BM_MemoryBandwidth(benchmark::State& state) {
  const size_t n = size_t{1} << 28;  // 1 GiB of floats
  std::vector<float> data(n, 1.0f);
  const size_t threads = pool().size();
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    std::vector<float> sums(threads);
    pool().run_on_all([&](size_t w) {
      const size_t begin = n / threads * w, end = w + 1 == threads ? n : n / threads * (w + 1);
      sums[w] = quantlab::kernels::stream_sum(data.data() + begin, end - begin);
    });
    benchmark::DoNotOptimize(sums.data());
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double bytes = static_cast<double>(n) * 4 * state.iterations();
  g_bandwidth_gbs = bytes / 1e9 / seconds;
  state.counters["GB/s"] = benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsRate);
}

void BM_FmaPeak(benchmark::State& state) {
  const size_t iterations = 1 << 24;
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    pool().run_on_all([&](size_t w) {
      benchmark::DoNotOptimize(quantlab::kernels::fma_probe(iterations, 1.0f + w));
    });
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double flops = quantlab::kernels::fma_probe_flops(iterations) * pool().size() * state.iterations();
  g_fma_peak_gflops = flops / 1e9 / seconds;
  state.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsRate);
}

// Storage behind a benchmark's affine MatrixView.
struct Stored {
  std::vector<uint32_t> words;
  std::vector<uint16_t> scales, biases;
  std::vector<float> scales_f32, biases_f32;
};

MatrixView affine_view(Stored& s, size_t rows, size_t cols, int bits, int group, DType scale_type) {
  s.words.resize(rows * cols * bits / 32);
  fill_random(s.words.data(), s.words.size() * 4, bits);
  const size_t groups = rows * cols / group;
  MatrixView v;
  v.type = WeightType::kAffine;
  v.rows = rows;
  v.cols = cols;
  v.bits = bits;
  v.group_size = group;
  v.scale_type = scale_type;
  v.data = s.words.data();
  if (scale_type == DType::kF32) {
    s.scales_f32.assign(groups, 0.01f);
    s.biases_f32.assign(groups, -0.05f);
    v.scales = s.scales_f32.data();
    v.biases = s.biases_f32.data();
  } else {
    const bool f16 = scale_type == DType::kF16;
    s.scales.assign(groups, f16 ? quantlab::f32_to_f16(0.01f) : quantlab::f32_to_bf16(0.01f));
    s.biases.assign(groups, f16 ? quantlab::f32_to_f16(-0.05f) : quantlab::f32_to_bf16(-0.05f));
    v.scales = s.scales.data();
    v.biases = s.biases.data();
  }
  return v;
}

size_t weight_bytes(const MatrixView& v) {
  if (v.type != WeightType::kAffine) return v.rows * v.cols * (v.type == WeightType::kF32 ? 4 : 2);
  return v.rows * v.packed_words_per_row() * 4 + 2 * v.rows * v.groups_per_row() * quantlab::dtype_size(v.scale_type);
}

void report_bandwidth(benchmark::State& state, double bytes_per_call) {
  state.counters["GB/s"] = benchmark::Counter(bytes_per_call / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["MB/call"] = bytes_per_call / 1e6;
  if (g_bandwidth_gbs > 0) {
    // % of roofline = achieved bandwidth / measured bandwidth, from the seconds per call.
    state.counters["roofline%"] = benchmark::Counter(
        bytes_per_call / 1e9 / g_bandwidth_gbs * 100, benchmark::Counter::kIsIterationInvariantRate);
  }
}

void run_matvec(benchmark::State& state, const MatrixView& v) {
  std::vector<float> x(v.cols, 0.5f), y(v.rows);
  for (auto _ : state) {
    quantlab::kernels::matvec(v, x.data(), y.data(), pool());
    benchmark::DoNotOptimize(y.data());
  }
  report_bandwidth(state, static_cast<double>(weight_bytes(v)));
}

// The compute path of a benchmark's compute argument: 0 exact, 1 int8, 2 bf16.
quantlab::kernels::Compute compute_arg(int64_t arg) {
  const quantlab::kernels::Compute paths[] = {quantlab::kernels::Compute::kExact, quantlab::kernels::Compute::kInt8,
                                              quantlab::kernels::Compute::kBf16};
  return paths[arg];
}

// Args: bits, rows, group size, scale dtype (0 f16, 1 bf16, 2 f32), compute (0 exact, 1 int8, 2 bf16);
// cols = 1024.
void BM_MatvecAffine(benchmark::State& state) {
  const int bits = static_cast<int>(state.range(0));
  const DType scale_types[] = {DType::kF16, DType::kBF16, DType::kF32};
  Stored s;
  MatrixView v = affine_view(s, state.range(1), 1024, bits, static_cast<int>(state.range(2)),
                             scale_types[state.range(3)]);
  v.compute = compute_arg(state.range(4));
  run_matvec(state, v);
}

// Args: weight type (0 f32, 1 f16, 2 bf16), rows; cols = 1024.
void BM_MatvecFloat(benchmark::State& state) {
  const WeightType types[] = {WeightType::kF32, WeightType::kF16, WeightType::kBF16};
  MatrixView v;
  v.type = types[state.range(0)];
  v.rows = state.range(1);
  v.cols = 1024;
  std::vector<uint8_t> data(weight_bytes(v));
  fill_random(data.data(), data.size(), 3);
  if (v.type != WeightType::kF32) {  // keep values finite: clear the top exponent bit of each half
    for (size_t i = 1; i < data.size(); i += 2) data[i] &= 0x3F;
  } else {
    for (size_t i = 3; i < data.size(); i += 4) data[i] &= 0x3F;
  }
  v.data = data.data();
  run_matvec(state, v);
}

// The decode of a Qwen3-0.6B-shaped layer stack without the rest of the engine: per layer, q/k/v as one
// batch, o, gate/up as one batch, down; 28 layers, so the weights (~90-300 MB) stream from DRAM as in
// the engine. Separates what the matvec and the pool lose on 1-4 MB matrices from the engine's own work.
// Args: bits, compute (0 exact, 1 int8, 2 bf16).
void BM_MatvecLayerStack(benchmark::State& state) {
  const int bits = static_cast<int>(state.range(0));
  const auto compute = compute_arg(state.range(1));
  constexpr size_t kLayers = 28, H = 1024, Q = 2048, KV = 1024, I = 3072;
  struct Shape { size_t rows, cols; };
  const Shape shapes[] = {{Q, H}, {KV, H}, {KV, H}, {H, Q}, {I, H}, {I, H}, {H, I}};
  std::vector<Stored> stored(kLayers * 7);
  std::vector<MatrixView> views;
  double bytes = 0;
  for (size_t i = 0; i < stored.size(); ++i) {
    const Shape sh = shapes[i % 7];
    views.push_back(affine_view(stored[i], sh.rows, sh.cols, bits, 64, DType::kF16));
    views.back().compute = compute;
    bytes += static_cast<double>(weight_bytes(views.back()));
  }
  std::vector<float> x(I, 0.5f), q(Q), k(KV), v(KV), o(H), gate(I), up(I), down(H);
  for (auto _ : state) {
    for (size_t l = 0; l < kLayers; ++l) {
      const MatrixView* w = views.data() + l * 7;
      const quantlab::kernels::MatvecJob qkv[] = {{w[0], x.data(), q.data()}, {w[1], x.data(), k.data()},
                                                  {w[2], x.data(), v.data()}};
      quantlab::kernels::matvec_batch(qkv, 3, pool());
      quantlab::kernels::matvec(w[3], x.data(), o.data(), pool());
      const quantlab::kernels::MatvecJob mlp[] = {{w[4], x.data(), gate.data()}, {w[5], x.data(), up.data()}};
      quantlab::kernels::matvec_batch(mlp, 2, pool());
      quantlab::kernels::matvec(w[6], x.data(), down.data(), pool());
    }
    benchmark::DoNotOptimize(down.data());
  }
  report_bandwidth(state, bytes);
}

// Decode attention of the Qwen3-0.6B shape (16 query heads, 8 KV heads of 128) over a cold KV cache:
// 8 layers of `n_ctx` positions (64 MB at 1024), split over the pool by KV head as the engine does. GB/s
// of K and V read, and % of the bandwidth probe. Args: n_ctx.
void BM_AttendDecode(benchmark::State& state) {
  constexpr size_t kLayers = 8, kHeads = 16, kKvHeads = 8, kGroup = kHeads / kKvHeads, kDim = 128;
  constexpr size_t kKvDim = kKvHeads * kDim;
  const size_t n_ctx = static_cast<size_t>(state.range(0));
  std::vector<float> keys(kLayers * n_ctx * kKvDim), values(keys.size()), q(kHeads * kDim, 0.01f),
      out(kHeads * kDim);
  fill_uniform(keys, 5);
  fill_uniform(values, 6);
  std::vector<float> scratch(pool().size() * kGroup * n_ctx);
  for (auto _ : state) {
    for (size_t l = 0; l < kLayers; ++l) {
      const float* k = keys.data() + l * n_ctx * kKvDim;
      const float* v = values.data() + l * n_ctx * kKvDim;
      pool().parallel_for(kKvHeads, 1, [&](size_t begin, size_t end, size_t worker) {
        for (size_t g = begin; g < end; ++g) {
          const size_t h = g * kGroup;
          quantlab::kernels::attend_heads(q.data() + h * kDim, kDim, kGroup, k + g * kDim, v + g * kDim, n_ctx, kDim,
                                          kKvDim, 0.088f, scratch.data() + worker * kGroup * n_ctx,
                                          out.data() + h * kDim, kDim);
        }
      }, 16);
    }
    benchmark::DoNotOptimize(out.data());
  }
  report_bandwidth(state, 2.0 * kLayers * n_ctx * kKvDim * sizeof(float));
}

// Args: bits (0 = bf16 weights), n, rows and cols of W.
void BM_Matmul(benchmark::State& state) {
  const int bits = static_cast<int>(state.range(0));
  const size_t n = state.range(1);
  const size_t rows = state.range(2), cols = state.range(3);
  Stored s;
  MatrixView v;
  std::vector<uint16_t> bf16;
  if (bits > 0) {
    v = affine_view(s, rows, cols, bits, 64, DType::kBF16);
  } else {
    bf16.assign(rows * cols, quantlab::f32_to_bf16(0.01f));
    v.type = WeightType::kBF16;
    v.rows = rows;
    v.cols = cols;
    v.data = bf16.data();
  }
  std::vector<float> x(n * cols, 0.25f), y(n * rows);
  for (auto _ : state) {
    quantlab::kernels::matmul(v, x.data(), n, y.data(), pool());
    benchmark::DoNotOptimize(y.data());
  }
  const double flops = 2.0 * n * rows * cols;
  state.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  if (g_fma_peak_gflops > 0) {
    state.counters["peak%"] = benchmark::Counter(flops / 1e9 / g_fma_peak_gflops * 100,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  }
}

// The quantizer's hot loop on one thread: f16 -> f32 conversion then affine_quantize, per 1024-wide row
// block. Reported as GB/s of f16 input (the quantizer runs one such loop per core).
void BM_QuantizeF16(benchmark::State& state) {
  const int bits = static_cast<int>(state.range(0));
  const size_t rows = 256, cols = 4096, group = 64;
  std::vector<uint16_t> input(rows * cols);
  for (size_t i = 0; i < input.size(); ++i) input[i] = quantlab::f32_to_f16(((i * 7919) % 2001) / 1000.0f - 1.0f);
  std::vector<float> values(rows * cols), scales(rows * cols / group), biases(rows * cols / group);
  std::vector<uint32_t> packed(rows * cols * bits / 32);
  for (auto _ : state) {
    quantlab::kernels::convert_to_f32(DType::kF16, input.data(), input.size(), values.data());
    quantlab::kernels::affine_quantize(values.data(), rows, cols, bits, group, packed.data(), scales.data(),
                                       biases.data());
    benchmark::DoNotOptimize(packed.data());
  }
  state.counters["GB/s"] =
      benchmark::Counter(input.size() * 2 / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_MemoryBandwidth)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_FmaPeak)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MatvecAffine)
    ->ArgNames({"bits", "rows", "group", "scale", "compute"})
    ->ArgsProduct({{2, 3, 4, 5, 6, 7, 8}, {1024, 3072, 151936}, {64}, {0}, {0, 1, 2}})
    ->ArgsProduct({{4}, {3072}, {32, 128}, {0}, {0, 1, 2}})
    ->ArgsProduct({{4}, {3072}, {64}, {1, 2}, {0}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_MatvecLayerStack)->ArgNames({"bits", "compute"})->ArgsProduct({{8, 6, 4}, {0, 1, 2}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_AttendDecode)->ArgName("n_ctx")->Arg(64)->Arg(1024)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_MatvecFloat)
    ->ArgNames({"type", "rows"})
    ->ArgsProduct({{0, 1, 2}, {3072, 151936}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_Matmul)
    ->ArgNames({"bits", "n", "rows", "cols"})
    ->ArgsProduct({{0, 4, 6, 8}, {17, 128, 512}, {3072}, {1024}})  // gate/up of the Qwen3-0.6B shape
    // The other projections of the Qwen3-0.6B shape at prefill: k/v, q, o, down.
    ->ArgsProduct({{4}, {512}, {1024, 2048}, {1024}})
    ->ArgsProduct({{4}, {512}, {1024}, {2048, 3072}})
    // One expert of the Qwen3-30B-A3B shape at a 512-token prefill (~32 tokens each): gate/up, down.
    ->ArgsProduct({{0, 4}, {32}, {768}, {2048}})
    ->ArgsProduct({{0, 4}, {32}, {2048}, {768}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_QuantizeF16)->ArgName("bits")->DenseRange(2, 8)->Unit(benchmark::kMillisecond)->UseRealTime();

// QL_BENCH_TARGET names one compiled target (as kernels::target_name spells it) to run every kernel on,
// e.g. AVX2 on an AVX-512 machine, to compare code paths in one run of the same binary.
bool apply_target_choice() {
  const char* wanted = std::getenv("QL_BENCH_TARGET");
  if (!wanted || !*wanted) return true;
  for (int64_t t : quantlab::kernels::compiled_targets()) {
    if (std::strcmp(quantlab::kernels::target_name(t), wanted) == 0) {
      quantlab::kernels::force_target(t);
      return true;
    }
  }
  std::fprintf(stderr, "kernels_bench: QL_BENCH_TARGET=%s is not a compiled target this CPU supports\n", wanted);
  return false;
}

int main(int argc, char** argv) {
  if (!apply_target_choice()) return 2;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
