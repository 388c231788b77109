// fuse against the references made by PEFT merge_and_unload (tests/data/README.md).
#include "quant/fuse.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <tuple>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/half.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "quant/convert.h"
#include "quant/quantizer.h"
#include "quant/testing.h"
#include "test_support.h"

namespace quantlab::quant {
namespace {

using quantlab::testing::data_path;
using quantlab::testing::TempDir;
using test_helpers::load_f32;

FuseReport fuse(const std::string& base, const std::string& adapter, const std::string& out,
                std::optional<DType> dtype = std::nullopt) {
  FuseOptions o;
  o.dtype = dtype;
  o.show_progress = false;
  ThreadPool pool(2);
  return fuse_adapter(base, adapter, out, o, pool);
}

double max_abs_diff(const io::ModelWeights& a, const io::ModelWeights& b, std::string* worst) {
  double m = 0;
  for (const auto& name : b.names()) {
    EXPECT_TRUE(a.contains(name)) << name;
    if (!a.contains(name)) continue;
    const auto x = load_f32(a, name), y = load_f32(b, name);
    EXPECT_EQ(x.size(), y.size()) << name;
    for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) {
      const double d = std::abs(double(x[i]) - y[i]);
      if (d > m) {
        m = d;
        *worst = name;
      }
    }
  }
  return m;
}

class FuseReference : public ::testing::TestWithParam<const char*> {};

TEST_P(FuseReference, ReproducesPeftMergedF32) {
  TempDir tmp;
  const auto r = fuse(data_path("reference-models/qwen3-tiny"),
                      data_path(std::string("reference-models/qwen3-tiny-lora/") + GetParam()), tmp / "fused", DType::kF32);
  EXPECT_EQ(r.modules.size(), 14u);  // 7 projections x 2 layers
  for (const auto& m : r.modules) EXPECT_GT(m.delta_norm, 0) << m.module;
  std::string worst;
  const double d = max_abs_diff(io::ModelWeights::open(tmp / "fused"),
                                io::ModelWeights::open(data_path("reference-models/qwen3-tiny-lora/merged-f32")), &worst);
  EXPECT_LE(d, 1e-6) << worst;
}

INSTANTIATE_TEST_SUITE_P(BothFormats, FuseReference, ::testing::Values("peft-adapter", "mlx-adapter"));

struct ToolCallingCase {
  const char* base;
  const char* adapter;
  const char* fused;
};

class FuseToolCalling : public ::testing::TestWithParam<ToolCallingCase> {};

TEST_P(FuseToolCalling, MatchesPeftFusedF16WithinRounding) {
  TempDir tmp;
  const auto c = GetParam();
  fuse(data_path(c.base), data_path(c.adapter), tmp / "fused");
  const io::ModelWeights ours = io::ModelWeights::open(tmp / "fused");
  const io::ModelWeights ref = io::ModelWeights::open(data_path(c.fused));
  size_t differing = 0, total = 0;
  for (const auto& name : ref.names()) {
    ASSERT_EQ(ours.at(name).info->dtype, DType::kF16) << name;
    const auto x = ours.bytes(name), y = ref.bytes(name);
    ASSERT_EQ(x.size(), y.size()) << name;
    for (size_t i = 0; i < x.size(); i += 2) {
      uint16_t a, b;
      std::memcpy(&a, x.data() + i, 2);
      std::memcpy(&b, y.data() + i, 2);
      ++total;
      if (a == b) continue;
      ++differing;
      // Within float16 rounding: one unit in the last place of the reference.
      const float fa = f16_to_f32(a), fb = f16_to_f32(b);
      const float ulp = std::abs(f16_to_f32(static_cast<uint16_t>(b + 1)) - fb);
      ASSERT_LE(std::abs(fa - fb), ulp * 1.001f) << name << " element " << i / 2;
    }
  }
  EXPECT_LT(differing, total / 100) << "more than 1% of weights differ";
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, FuseToolCalling,
    ::testing::Values(ToolCallingCase{"tool-calling/dense-base-f16", "tool-calling/dense-lora-strong",
                                      "tool-calling/dense-fused-strong-f16"},
                      ToolCallingCase{"tool-calling/dense-base-f16", "tool-calling/dense-lora-gentle",
                                      "tool-calling/dense-fused-gentle-f16"},
                      ToolCallingCase{"tool-calling/moe-base-f16", "tool-calling/moe-lora-strong",
                                      "tool-calling/moe-fused-strong-f16"}));

TEST(Fuse, QuantizedBaseIsRequantizedAndReportsSurvival) {
  TempDir tmp;
  QuantizeOptions q;
  q.plan.bits = 8;
  q.show_progress = false;
  ThreadPool pool(2);
  quantize_model(data_path("reference-models/qwen3-tiny"), tmp / "q8", q, pool);
  q.plan.bits = 2;
  quantize_model(data_path("reference-models/qwen3-tiny"), tmp / "q2", q, pool);
  const auto r8 = fuse(tmp / "q8", data_path("reference-models/qwen3-tiny-lora/peft-adapter"), tmp / "f8");
  const auto r2 = fuse(tmp / "q2", data_path("reference-models/qwen3-tiny-lora/peft-adapter"), tmp / "f2");
  ASSERT_TRUE(r8.retained && r2.retained);
  EXPECT_TRUE(r8.quantized_base);
  // 8-bit keeps most of a non-trivial delta; 2-bit keeps much less.
  EXPECT_GT(*r8.retained, 0.5);
  EXPECT_LT(*r2.retained, *r8.retained);
  const io::ModelWeights f8 = io::ModelWeights::open(tmp / "f8");
  EXPECT_EQ(f8.at("model.layers.0.self_attn.q_proj.weight").info->dtype, DType::kU32);
  EXPECT_TRUE(nlohmann::json::parse(quantlab::testing::slurp_file(tmp / "f8/config.json")).contains("quantization"));
}

TEST(Fuse, MismatchedAdaptersNameTheModule) {
  TempDir tmp;
  // The tool-calling adapter targets a 256-wide model; qwen3-tiny is 128 wide.
  try {
    fuse(data_path("reference-models/qwen3-tiny"), data_path("tool-calling/dense-lora-strong"), tmp / "x");
    FAIL() << "mismatched adapter accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0."), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("wrong base"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(tmp / "x"));
}

TEST(Fuse, MissingModuleAndWrongRankAreReported) {
  TempDir tmp;
  const std::string adapter = tmp / "adapter";
  std::filesystem::copy(data_path("reference-models/qwen3-tiny-lora/peft-adapter"), adapter);
  // Rank in the config disagrees with the tensors.
  auto cfg = nlohmann::json::parse(quantlab::testing::slurp_file(adapter + "/adapter_config.json"));
  cfg["r"] = 4;
  std::ofstream(adapter + "/adapter_config.json") << cfg.dump();
  try {
    fuse(data_path("reference-models/qwen3-tiny"), adapter, tmp / "x");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 8"), std::string::npos) << e.what();
  }
  // A base with fewer layers lacks the adapter's layer-1 modules.
  cfg["r"] = 8;
  std::ofstream(adapter + "/adapter_config.json") << cfg.dump();
  try {
    fuse(data_path("reference-models/llama-tiny"), data_path("tool-calling/moe-lora-strong"), tmp / "y");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("adapter module"), std::string::npos) << e.what();
  }
}

// Issue 20: a PEFT adapter on every projection of Qwen2 (q/k/v carry biases): each fused weight is
// W + (alpha / r) B A, and the biases come through untouched (PEFT's bias "none").
TEST(Fuse, Qwen2ProjectionsWithBiasesUntouched) {
  const std::string base = data_path("reference-models/qwen2-tiny");
  TempDir tmp;
  const std::string adapter = tmp / "adapter";
  std::filesystem::create_directories(adapter);
  const int r = 4, alpha = 8;
  const auto base_weights = io::ModelWeights::open(base);
  std::vector<std::vector<float>> buffers;
  std::vector<io::TensorData> tensors;
  std::vector<std::string> modules;
  uint32_t seed = 1;
  const auto next = [&seed] {
    seed = seed * 1664525u + 1013904223u;
    return static_cast<float>(static_cast<int32_t>(seed >> 8) % 2001 - 1000) / 20000.0f;
  };
  for (int layer = 0; layer < 2; ++layer)
    for (const char* proj : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"}) {
      const std::string module = "model.layers." + std::to_string(layer) + "." + proj;
      const auto& shape = base_weights.at(module + ".weight").info->shape;
      modules.push_back(module);
      for (const auto& [suffix, rows, cols] : {std::tuple{".lora_A.weight", int64_t(r), shape[1]},
                                               std::tuple{".lora_B.weight", shape[0], int64_t(r)}}) {
        buffers.emplace_back(static_cast<size_t>(rows * cols));
        for (float& v : buffers.back()) v = next();
        tensors.push_back({{"base_model.model." + module + suffix, DType::kF32, {rows, cols}},
                           {reinterpret_cast<const uint8_t*>(buffers.back().data()), buffers.back().size() * 4}});
      }
    }
  io::write_safetensors_file(adapter + "/adapter_model.safetensors", tensors, {});
  std::ofstream(adapter + "/adapter_config.json")
      << nlohmann::json{{"peft_type", "LORA"}, {"r", r}, {"lora_alpha", alpha}, {"bias", "none"},
                        {"target_modules", {"q_proj", "k_proj", "v_proj", "o_proj"}}}
             .dump();
  fuse(base, adapter, tmp / "fused", DType::kF32);
  const auto fused = io::ModelWeights::open(tmp / "fused");
  const double scale = double(alpha) / r;
  for (size_t m = 0; m < modules.size(); ++m) {
    SCOPED_TRACE(modules[m]);
    const auto w = load_f32(base_weights, modules[m] + ".weight"), f = load_f32(fused, modules[m] + ".weight");
    const auto& a = buffers[2 * m];
    const auto& b = buffers[2 * m + 1];
    const size_t out = base_weights.at(modules[m] + ".weight").info->shape[0], in = w.size() / out;
    double worst = 0;
    for (size_t i = 0; i < out; ++i)
      for (size_t j = 0; j < in; ++j) {
        double d = 0;
        for (int k = 0; k < r; ++k) d += double(b[i * r + k]) * a[k * in + j];
        worst = std::max(worst, std::abs(f[i * in + j] - (w[i * in + j] + scale * d)));
      }
    EXPECT_LT(worst, 1e-6);
    const std::string bias = modules[m] + ".bias";
    if (modules[m].ends_with("o_proj")) {
      EXPECT_FALSE(fused.contains(bias));
      continue;
    }
    EXPECT_EQ(load_f32(fused, bias), load_f32(base_weights, bias));
  }
}

}  // namespace
}  // namespace quantlab::quant
