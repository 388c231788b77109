// End-to-end tests of the streaming quantizer on the reference checkpoints: every stored code, scale
// and bias is checked against the scalar reference, errors are bounded, and bytes do not depend on
// the thread count.
#include "quant/quantizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/half.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "kernels/affine_reference.h"
#include "quant/convert.h"
#include "quant/dequantizer.h"
#include "quant/quantized_layout.h"
#include "quant/testing.h"
#include "test_support.h"

namespace quantlab::quant {
namespace {

using quantlab::testing::data_path;
using quantlab::testing::TempDir;
using test_helpers::load_f32;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

QuantizeReport quantize(const std::string& in, const std::string& out, int bits, int group, size_t threads,
                        KernelPath kernel = KernelPath::kSimd) {
  QuantizeOptions o;
  o.plan.bits = bits;
  o.plan.group_size = group;
  o.show_progress = false;
  o.kernel = kernel;
  ThreadPool pool(threads);
  return quantize_model(in, out, o, pool);
}

// Checks one quantized module against the reference: codes and rounded scales/biases bit-exact,
// dequantized values within half a step inside the grid and one step at clipped ends, plus storage
// rounding of the scale and bias.
void check_module(const std::vector<float>& source, const io::ModelWeights& out, const QuantizedModule& m) {
  const int bits = m.quant.bits, g = m.quant.group_size;
  const size_t cols = static_cast<size_t>(m.logical_shape.back());
  const size_t rows = source.size() / cols;
  const auto scales = load_f32(out, m.module + ".scales");
  const auto biases = load_f32(out, m.module + ".biases");
  const auto* packed = reinterpret_cast<const uint32_t*>(out.bytes(m.module + ".weight").data());
  std::vector<uint32_t> ref_packed(cols * bits / 32);
  std::vector<float> ref_s(cols / g), ref_b(cols / g), stored_s(cols / g), back(cols);
  std::vector<uint8_t> codes(cols);
  for (size_t r = 0; r < rows; ++r) {
    const float* w = source.data() + r * cols;
    kernels::quantize_row_reference(w, cols, bits, g, ref_packed.data(), ref_s.data(), ref_b.data());
    ASSERT_EQ(0, std::memcmp(ref_packed.data(), packed + r * cols * bits / 32, ref_packed.size() * 4))
        << m.module << " row " << r << ": codes differ from the reference";
    std::vector<float> rounded_s = ref_s, rounded_b = ref_b;
    round_to_dtype(rounded_s.data(), rounded_s.size(), m.scale_dtype);
    round_to_dtype(rounded_b.data(), rounded_b.size(), m.scale_dtype);
    for (size_t k = 0; k < cols / g; ++k) {
      ASSERT_EQ(rounded_s[k], scales[r * cols / g + k]) << m.module << " scale row " << r;
      ASSERT_EQ(rounded_b[k], biases[r * cols / g + k]) << m.module << " bias row " << r;
    }
    kernels::dequantize_row_reference(packed + r * cols * bits / 32, scales.data() + r * cols / g,
                             biases.data() + r * cols / g, cols, bits, g, back.data());
    kernels::unpack_codes_reference(packed + r * cols * bits / 32, cols, bits, codes.data());
    for (size_t i = 0; i < cols; ++i) {
      const size_t k = i / g;
      const bool inside = codes[i] != 0 && codes[i] != kernels::max_code(bits);
      const float storage = codes[i] * std::abs(ref_s[k] - rounded_s[k]) + std::abs(ref_b[k] - rounded_b[k]);
      const float bound = (inside ? 0.5f : 1.0f) * std::abs(ref_s[k]) * 1.0001f + storage * 1.0001f + 1e-7f;
      ASSERT_LE(std::abs(back[i] - w[i]), bound) << m.module << " row " << r << " col " << i;
    }
  }
}

struct ModelCase {
  const char* dir;
};

class QuantizeFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(QuantizeFixture, EveryBitWidthMatchesReferenceWithinErrorBound) {
  const std::string in = data_path(GetParam());
  const io::ModelWeights source = io::ModelWeights::open(in);
  for (int bits = 2; bits <= 8; ++bits) {
    const int group = bits % 2 ? 32 : (bits == 4 ? 64 : 128);  // every group size is covered
    TempDir tmp;
    const std::string out = tmp / "q";
    const auto report = quantize(in, out, bits, group, 2);
    const io::ModelConfig cfg = io::load_model_config(out);
    ASSERT_TRUE(cfg.quantization.has_value());
    EXPECT_EQ(cfg.quantization->global.bits, bits);
    const io::ModelWeights q = io::ModelWeights::open(out);
    const auto layout = describe_quantized(cfg, q);
    ASSERT_FALSE(layout.modules.empty());
    for (const auto& m : layout.modules) {
      // Rebuild the float input of this module (stacked experts in order), rounded to the scale dtype
      // as the quantizer casts first.
      std::vector<float> src;
      for (const auto& t : report.plan.tensors) {
        if (t.module != m.module) continue;
        for (const auto& s : t.sources) {
          auto v = load_f32(source, s);
          src.insert(src.end(), v.begin(), v.end());
        }
      }
      ASSERT_FALSE(src.empty()) << m.module;
      round_to_dtype(src.data(), src.size(), m.scale_dtype);
      check_module(src, q, m);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ReferenceModels, QuantizeFixture,
                         ::testing::Values("reference-models/qwen3-tiny", "reference-models/qwen3moe-tiny",
                                           "reference-models/llama-tiny",
                                           "reference-models/qwen3-tiny-lora/merged-f32"));

TEST(Quantizer, OutputBytesIndependentOfThreadCount) {
  TempDir tmp;
  const std::string in = data_path("reference-models/qwen3moe-tiny");
  quantize(in, tmp / "t1", 6, 64, 1);
  quantize(in, tmp / "t2", 6, 64, 2);
  quantize(in, tmp / "t3", 6, 64, 3);
  const std::string one = read_bytes(tmp / "t1/model.safetensors");
  ASSERT_GT(one.size(), 1000u);
  EXPECT_EQ(one, read_bytes(tmp / "t2/model.safetensors"));
  EXPECT_EQ(one, read_bytes(tmp / "t3/model.safetensors"));
  EXPECT_EQ(read_bytes(tmp / "t1/config.json"), read_bytes(tmp / "t2/config.json"));
}

TEST(Quantizer, UncachedReadsWriteTheSameFiles) {
  // The O_DIRECT path (automatic for checkpoints larger than half the memory) against the cached one,
  // on a float16 model whose tensors start at offsets no 4 KiB boundary lines up with.
  TempDir tmp;
  const std::string in = data_path("tool-calling/dense-fused-strong-f16");
  QuantizeOptions o;
  o.plan.bits = 5;
  o.plan.group_size = 32;
  o.show_progress = false;
  ThreadPool pool(2);
  o.uncached_reads = false;
  quantize_model(in, tmp / "cached", o, pool);
  o.uncached_reads = true;
  quantize_model(in, tmp / "uncached", o, pool);
  const std::string cached = read_bytes(tmp / "cached/model.safetensors");
  ASSERT_GT(cached.size(), 100000u);
  EXPECT_EQ(cached, read_bytes(tmp / "uncached/model.safetensors"));
}

TEST(Quantizer, UncachedWritesWriteTheSameFiles) {
  // The output written past the page cache (the default) against the cached writer, in shards small
  // enough that several 1 MiB blocks and a partial last block each hold pieces of many tensors.
  TempDir tmp;
  const std::string in = data_path("tool-calling/moe-fused-strong-f16");
  QuantizeOptions o;
  o.plan.bits = 8;
  o.show_progress = false;
  o.max_shard_bytes = 3 << 20;
  ThreadPool pool(2);
  o.uncached_writes = false;
  const QuantizeReport cached = quantize_model(in, tmp / "cached", o, pool);
  o.uncached_writes = true;
  const QuantizeReport direct = quantize_model(in, tmp / "direct", o, pool);
  ASSERT_GT(cached.shards.size(), 1u);
  ASSERT_EQ(cached.shards, direct.shards);
  for (const std::string& shard : cached.shards) {
    const std::string bytes = read_bytes(tmp / ("cached/" + shard));
    ASSERT_GT(bytes.size(), 0u);
    EXPECT_EQ(bytes, read_bytes(tmp / ("direct/" + shard))) << shard;
  }
}

TEST(Quantizer, SimdAndScalarPathsWriteIdenticalFiles) {
  TempDir tmp;
  const std::string in = data_path("tool-calling/dense-fused-strong-f16");
  for (int bits : {3, 6, 7}) {
    const std::string a = tmp / ("simd" + std::to_string(bits)), b = tmp / ("ref" + std::to_string(bits));
    quantize(in, a, bits, 64, 2, KernelPath::kSimd);
    quantize(in, b, bits, 64, 2, KernelPath::kScalarReference);
    EXPECT_EQ(read_bytes(a + "/model.safetensors"), read_bytes(b + "/model.safetensors")) << bits;
  }
}

TEST(Quantizer, MoeExpertsAreStackedAndRouterIsEightBit) {
  TempDir tmp;
  const std::string out = tmp / "moe4";
  quantize(data_path("reference-models/qwen3moe-tiny"), out, 4, 64, 2);
  const io::ModelConfig cfg = io::load_model_config(out);
  const io::ModelWeights w = io::ModelWeights::open(out);
  EXPECT_FALSE(w.contains("model.layers.0.mlp.experts.0.gate_proj.weight"));
  const auto& stacked = *w.at("model.layers.0.mlp.switch_mlp.gate_proj.weight").info;
  ASSERT_EQ(stacked.shape.size(), 3u);
  EXPECT_EQ(stacked.shape[0], cfg.num_experts);
  const auto router = cfg.quantization->resolve("model.layers.0.mlp.gate", true);
  ASSERT_TRUE(router.has_value());
  EXPECT_EQ(router->bits, 8);
  EXPECT_EQ(router->group_size, 64);
  EXPECT_EQ(w.at("model.layers.0.mlp.gate.weight").info->shape.back() * 32 / 8, cfg.hidden_size);
  // Layer 1 is dense (mlp_only_layers): no experts there.
  EXPECT_TRUE(w.contains("model.layers.1.mlp.gate_proj.weight"));
  // mlx-lm reads v4 spellings.
  EXPECT_TRUE(cfg.raw.contains("num_experts"));
  EXPECT_TRUE(cfg.raw.contains("rope_theta"));
  EXPECT_EQ(cfg.raw["quantization"], cfg.raw["quantization_config"]);
}

TEST(Quantizer, MoeStackUnstackRoundTripIsExact) {
  // quantize -> dequantize must give back exactly the per-expert tensors that dequantizing the
  // stacked tensor row by row gives, under the original HF names.
  TempDir tmp;
  const std::string in = data_path("reference-models/qwen3moe-tiny");
  quantize(in, tmp / "q", 8, 32, 2);
  DequantizeOptions o;
  o.dtype = DType::kF32;
  o.show_progress = false;
  ThreadPool pool(2);
  dequantize_model(tmp / "q", tmp / "d", o, pool);
  const io::ModelWeights q = io::ModelWeights::open(tmp / "q");
  const io::ModelWeights d = io::ModelWeights::open(tmp / "d");
  const io::ModelWeights src = io::ModelWeights::open(in);
  for (const auto& name : src.names()) EXPECT_TRUE(d.contains(name)) << name << " missing after round trip";
  const std::string stacked = "model.layers.2.mlp.switch_mlp.down_proj";
  const auto& packed = *q.at(stacked + ".weight").info;
  const int64_t experts = packed.shape[0], rows = packed.shape[1], cols = packed.shape[2] * 32 / 8;
  const auto scales = load_f32(q, stacked + ".scales"), biases = load_f32(q, stacked + ".biases");
  const auto* words = reinterpret_cast<const uint32_t*>(q.bytes(stacked + ".weight").data());
  std::vector<float> row(cols);
  for (int64_t e = 0; e < experts; ++e) {
    const auto expert = load_f32(d, "model.layers.2.mlp.experts." + std::to_string(e) + ".down_proj.weight");
    ASSERT_EQ(expert.size(), static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t gr = e * rows + r;
      kernels::dequantize_row_reference(words + gr * cols * 8 / 32, scales.data() + gr * cols / 32,
                               biases.data() + gr * cols / 32, cols, 8, 32, row.data());
      ASSERT_EQ(0, std::memcmp(row.data(), expert.data() + r * cols, cols * 4)) << "expert " << e << " row " << r;
    }
  }
}

TEST(Quantizer, DequantizeUnstacksFloatExpertsToo) {
  // At group 128, qwen3moe-tiny's expert down_proj (in = moe_intermediate) is not a multiple of the
  // group, so it stays float and stacked in the quantized file; dequantize must still unstack it.
  TempDir tmp;
  const std::string in = data_path("reference-models/qwen3moe-tiny");
  quantize(in, tmp / "q", 4, 128, 2);
  const io::ModelWeights q = io::ModelWeights::open(tmp / "q");
  ASSERT_EQ(q.at("model.layers.0.mlp.switch_mlp.down_proj.weight").info->dtype, DType::kF16);
  DequantizeOptions o;
  o.show_progress = false;
  ThreadPool pool(2);
  dequantize_model(tmp / "q", tmp / "d", o, pool);
  const io::ModelWeights d = io::ModelWeights::open(tmp / "d");
  const io::ModelWeights src = io::ModelWeights::open(in);
  EXPECT_EQ(d.names(), src.names());
  // The float experts come back bit for bit.
  for (int e = 0; e < 8; ++e) {
    const std::string name = "model.layers.0.mlp.experts." + std::to_string(e) + ".down_proj.weight";
    const auto a = d.bytes(name), b = src.bytes(name);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size())) << name;
  }
}

TEST(Quantizer, RefusesQuantizedInputPointingToDequantize) {
  TempDir tmp;
  quantize(data_path("reference-models/qwen3-tiny"), tmp / "q", 4, 64, 1);
  try {
    quantize(tmp / "q", tmp / "qq", 4, 64, 1);
    FAIL() << "quantized input accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dequantize"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(tmp / "qq"));
}

TEST(Quantizer, SideFilesAreCopiedAndShardsAreIndexed) {
  TempDir tmp;
  QuantizeOptions o;
  o.plan.bits = 8;
  o.show_progress = false;
  o.max_shard_bytes = 2 << 20;  // forces several shards on a ~9 MB model
  ThreadPool pool(2);
  const auto r = quantize_model(data_path("tool-calling/dense-fused-strong-f16"), tmp / "q", o, pool);
  EXPECT_GT(r.shards.size(), 1u);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json",
                        "model.safetensors.index.json", "config.json"})
    EXPECT_TRUE(std::filesystem::exists(tmp / ("q/" + std::string(f)))) << f;
  const io::ModelWeights w = io::ModelWeights::open(tmp / "q");  // goes through the index
  EXPECT_EQ(w.files().size(), r.shards.size());
}

}  // namespace
}  // namespace quantlab::quant
