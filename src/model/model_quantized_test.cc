// MLX-quantized models run straight from their packed bytes must compute the same function as the
// same model dequantized to float32: logits equal up to float summation order (relative 1e-4), for
// every bit width 2-8, dense and MoE (stacked switch_mlp experts, 8-bit router), tied quantized
// embeddings used as the output head, and several group sizes.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.h"
#include "io/model_config.h"
#include "model/model.h"
#include "model/session.h"
#include "model/testing.h"
#include "quant/dequantizer.h"
#include "quant/quantizer.h"

namespace quantlab::model {
namespace {

using testing::data_path;
using testing::max_abs;
using testing::max_abs_diff;
using testing::read_tensor;
using testing::TempDir;

struct QuantCase {
  const char* model;  // under tests/data/reference-models
  int bits;
  int group_size;
};

std::string case_name(const ::testing::TestParamInfo<QuantCase>& info) {
  std::string name = info.param.model;
  for (char& ch : name)
    if (ch == '-') ch = '_';
  return name + "_b" + std::to_string(info.param.bits) + "_g" + std::to_string(info.param.group_size);
}

std::vector<float> logits_of(const std::string& dir, const std::vector<int32_t>& ids, ThreadPool& pool) {
  const Model model = Model::load(dir);
  Session session(model, pool);
  return session.forward(ids, /*all_logits=*/true);
}

class QuantizedLogits : public ::testing::TestWithParam<QuantCase> {};

TEST_P(QuantizedLogits, EqualDequantizedFloat32Model) {
  const QuantCase& c = GetParam();
  const std::string src = data_path(std::string("reference-models/") + c.model);
  TempDir tmp;
  ThreadPool pool(2);
  quant::QuantizeOptions q;
  q.plan.bits = c.bits;
  q.plan.group_size = c.group_size;
  q.show_progress = false;
  quant::quantize_model(src, tmp / "q", q, pool);
  quant::DequantizeOptions d;
  d.dtype = DType::kF32;
  d.show_progress = false;
  quant::dequantize_model(tmp / "q", tmp / "f32", d, pool);

  // The engine really reads packed weights (not a float copy): the quantized model's views are affine.
  const Model quantized = Model::load(tmp / "q");
  ASSERT_EQ(quantized.layers()[0].attention.q.weight.type, kernels::WeightType::kAffine);
  ASSERT_EQ(quantized.layers()[0].attention.q.weight.bits, c.bits);
  ASSERT_EQ(quantized.embedding().type, kernels::WeightType::kAffine);
  if (quantized.dims().moe_intermediate % c.group_size != 0) {
    ASSERT_NE(quantized.layers()[0].moe.down[0].type, kernels::WeightType::kAffine);
  }

  const io::SafetensorsFile ref(src + "/reference.safetensors");
  const auto ids = read_tensor<int32_t>(ref, "input_ids");
  const auto from_packed = logits_of(tmp / "q", ids, pool);
  const auto from_float = logits_of(tmp / "f32", ids, pool);
  ASSERT_EQ(from_packed.size(), from_float.size());
  const float scale = std::max(1.0f, max_abs(from_float));
  EXPECT_LE(max_abs_diff(from_packed, from_float), 1e-4f * scale) << "max |logit| " << scale;
  // Low bit widths must visibly change the function (the comparison above is not vacuous).
  if (c.bits <= 3) {
    EXPECT_GT(max_abs_diff(from_float, read_tensor<float>(ref, "logits")), 1e-3f);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Bits, QuantizedLogits,
    ::testing::Values(QuantCase{"qwen3-tiny", 2, 64}, QuantCase{"qwen3-tiny", 3, 32}, QuantCase{"qwen3-tiny", 4, 64},
                      QuantCase{"qwen3-tiny", 5, 128}, QuantCase{"qwen3-tiny", 6, 64}, QuantCase{"qwen3-tiny", 7, 32},
                      QuantCase{"qwen3-tiny", 8, 64}, QuantCase{"qwen3moe-tiny", 2, 32},
                      QuantCase{"qwen3moe-tiny", 4, 64}, QuantCase{"qwen3moe-tiny", 6, 64},
                      QuantCase{"qwen3moe-tiny", 8, 32},
                      // Group 128: the experts' down_proj (64 inputs) stays float beside packed modules.
                      QuantCase{"qwen3moe-tiny", 3, 128}, QuantCase{"llama-tiny", 3, 64},
                      QuantCase{"llama-tiny", 5, 32}, QuantCase{"llama-tiny", 8, 128},
                      // Qwen2 (issue 20): every width, its q/k/v biases added after the packed matvec.
                      QuantCase{"qwen2-tiny", 2, 64}, QuantCase{"qwen2-tiny", 3, 32}, QuantCase{"qwen2-tiny", 4, 64},
                      QuantCase{"qwen2-tiny", 5, 128}, QuantCase{"qwen2-tiny", 6, 64}, QuantCase{"qwen2-tiny", 7, 32},
                      QuantCase{"qwen2-tiny", 8, 64}),
    case_name);

// Qwen2's q/k/v biases are never quantized (mlx-lm keeps every bias float): the quantized files hold
// them byte for byte as the source does, and o_proj has none.
TEST(QuantizedModel, Qwen2BiasesStayFloatAndUnchanged) {
  const std::string src = data_path("reference-models/qwen2-tiny");
  TempDir tmp;
  ThreadPool pool(2);
  quant::QuantizeOptions q;
  q.plan.bits = 4;
  q.plan.group_size = 64;
  q.show_progress = false;
  quant::quantize_model(src, tmp / "q", q, pool);
  const auto before = io::ModelWeights::open(src);
  const auto after = io::ModelWeights::open(tmp / "q");
  for (const char* proj : {"q_proj", "k_proj", "v_proj"}) {
    const std::string bias = std::string("model.layers.1.self_attn.") + proj + ".bias";
    SCOPED_TRACE(bias);
    ASSERT_TRUE(after.contains(bias));
    EXPECT_EQ(after.at(bias).info->dtype, before.at(bias).info->dtype);
    const auto a = after.bytes(bias), b = before.bytes(bias);
    EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin(), b.end()));
    // The weight beside it is packed, with MLX's scales and (affine) biases, a different tensor.
    EXPECT_EQ(after.at(std::string("model.layers.1.self_attn.") + proj + ".weight").info->dtype, DType::kU32);
    EXPECT_TRUE(after.contains(std::string("model.layers.1.self_attn.") + proj + ".biases"));
  }
  EXPECT_FALSE(after.contains("model.layers.1.self_attn.o_proj.bias"));
  const Model model = Model::load(tmp / "q");
  EXPECT_EQ(model.layers()[1].attention.q.bias.size(), 128u);
  EXPECT_TRUE(model.layers()[1].attention.o.bias.empty());
}

// The MoE checkpoint after quantization has stacked experts and a router at 8 bits / group 64.
TEST(QuantizedModel, MoeUsesStackedExpertsAndEightBitRouter) {
  TempDir tmp;
  ThreadPool pool(2);
  quant::QuantizeOptions q;
  q.plan.bits = 4;
  q.plan.group_size = 32;
  q.show_progress = false;
  quant::quantize_model(data_path("reference-models/qwen3moe-tiny"), tmp / "q", q, pool);
  const Model m = Model::load(tmp / "q");
  ASSERT_TRUE(m.weights().contains("model.layers.0.mlp.switch_mlp.gate_proj.weight"));
  const MoeMlp& moe = m.layers()[0].moe;
  EXPECT_EQ(moe.router.weight.bits, 8);
  EXPECT_EQ(moe.router.weight.group_size, 64);
  ASSERT_EQ(moe.gate.size(), 8u);
  EXPECT_EQ(moe.gate[3].bits, 4);
  EXPECT_EQ(moe.gate[3].rows, 64u);
  // Expert e's view starts e * rows packed rows into the stacked tensor.
  const auto* base = static_cast<const uint32_t*>(moe.gate[0].data);
  EXPECT_EQ(static_cast<const uint32_t*>(moe.gate[3].data), base + 3 * 64 * moe.gate[0].packed_words_per_row());
  // Less is read per token than is stored: only 2 of 8 experts run.
  EXPECT_LT(m.bytes_read_per_token(), m.mapped_weight_bytes());
}

TEST(QuantizedModel, ConfigBitsContradictingPackedShapeIsReported) {
  TempDir tmp;
  ThreadPool pool(1);
  quant::QuantizeOptions q;
  q.plan.bits = 4;
  q.show_progress = false;
  quant::quantize_model(data_path("reference-models/llama-tiny"), tmp / "q", q, pool);
  // Claim 8 bits for one module whose codes were packed at 4.
  auto config = nlohmann::ordered_json::parse(read_text_file(tmp / "q/config.json"));
  config["quantization"]["model.layers.1.self_attn.o_proj"] = {{"bits", 8}, {"group_size", 64}};
  std::ofstream(tmp / "q/config.json") << config.dump(2);
  try {
    Model::load(tmp / "q");
    FAIL() << "expected a shape error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("model.layers.1.self_attn.o_proj.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("8 bits"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace quantlab::model
