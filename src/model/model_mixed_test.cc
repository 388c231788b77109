// A per-module quantization plan end to end (issue 14): attention at 8 bits / group 32, the MLPs at the
// global 4 bits / group 64, layer 1 left in float. config.json carries mlx-lm's per-module entries,
// every tensor equals the scalar reference at its own width, the model summary (`inspect`) reports the
// true bits per weight, and the engine's logits equal the dequantized float32 model's.
#include <gtest/gtest.h>

#include <cstring>
#include <map>

#include "core/error.h"
#include "core/half.h"
#include "core/mapped_file.h"
#include "kernels/affine_reference.h"
#include "model/model.h"
#include "model/session.h"
#include "model/testing.h"
#include "quant/dequantizer.h"
#include "quant/model_summary.h"
#include "quant/quantizer.h"

namespace quantlab::model {
namespace {

using testing::data_path;
using testing::max_abs;
using testing::max_abs_diff;
using testing::TempDir;

const std::string kSource = data_path("tool-calling/dense-fused-strong-f16");

quant::QuantizeReport quantize_mixed(const std::string& out, ThreadPool& pool) {
  quant::QuantizeOptions q;
  q.plan.bits = 4;
  q.plan.group_size = 64;
  q.plan.overrides = {{R"(^model\.layers\.1\.)", std::nullopt, ""},
                      {R"(self_attn\.)", io::ModuleQuant{8, 32, "affine"}, ""}};
  q.show_progress = false;
  return quant::quantize_model(kSource, out, q, pool);
}

// The setting the test's plan means for a module.
std::optional<io::ModuleQuant> intended(const std::string& module) {
  if (module.starts_with("model.layers.1.")) return std::nullopt;
  if (module.find("self_attn.") != std::string::npos) return io::ModuleQuant{8, 32, "affine"};
  return io::ModuleQuant{4, 64, "affine"};
}

std::vector<float> f16_row_as_f32(const io::ModelWeights& w, const std::string& name, size_t row, size_t cols) {
  const auto bytes = w.bytes(name);
  std::vector<float> out(cols);
  for (size_t c = 0; c < cols; ++c) {
    uint16_t h;
    std::memcpy(&h, bytes.data() + (row * cols + c) * 2, 2);
    out[c] = f16_to_f32(h);
  }
  return out;
}

class MixedPlan : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ThreadPool pool(2);
    report_ = new quant::QuantizeReport(quantize_mixed(*dir_ / "q", pool));
  }
  static void TearDownTestSuite() {
    delete report_;
    delete dir_;
  }
  static TempDir* dir_;
  static quant::QuantizeReport* report_;
};
TempDir* MixedPlan::dir_ = nullptr;
quant::QuantizeReport* MixedPlan::report_ = nullptr;

TEST_F(MixedPlan, ConfigHasMlxLmPerModuleEntries) {
  const auto config = nlohmann::ordered_json::parse(read_text_file(*dir_ / "q/config.json"));
  for (const char* key : {"quantization", "quantization_config"}) {
    const auto& q = config.at(key);
    EXPECT_EQ(q.at("bits"), 4);
    EXPECT_EQ(q.at("group_size"), 64);
    // A module that differs from the global setting has its own {"group_size", "bits"} dict, one kept
    // in float has `false`, and one at the global setting has no entry (mlx-lm's load then looks for
    // its .scales).
    const auto& attn = q.at("model.layers.0.self_attn.q_proj");
    EXPECT_EQ(attn.at("bits"), 8);
    EXPECT_EQ(attn.at("group_size"), 32);
    EXPECT_EQ(q.at("model.layers.1.mlp.down_proj"), false);
    EXPECT_EQ(q.at("model.layers.1.self_attn.o_proj"), false);
    EXPECT_FALSE(q.contains("model.layers.0.mlp.down_proj"));
  }
}

TEST_F(MixedPlan, EveryTensorEqualsTheReferenceAtItsOwnWidth) {
  const io::ModelWeights src = io::ModelWeights::open(kSource);
  const io::ModelWeights out = io::ModelWeights::open(*dir_ / "q");
  size_t quantized = 0, kept = 0;
  for (const auto& t : report_->plan.tensors) {
    if (t.module.empty() || t.name == "lm_head.weight") continue;
    const auto want = intended(t.module);
    ASSERT_EQ(t.quant, want) << t.module;
    const size_t cols = static_cast<size_t>(t.cols()), rows = static_cast<size_t>(t.rows());
    if (!want) {
      ++kept;
      const auto a = src.bytes(t.name), b = out.bytes(t.name);
      ASSERT_EQ(a.size(), b.size()) << t.name;
      EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size())) << t.name << " changed although kept in float";
      continue;
    }
    ++quantized;
    const int bits = want->bits, g = want->group_size;
    const auto* packed = reinterpret_cast<const uint32_t*>(out.bytes(t.module + ".weight").data());
    const auto scales = out.bytes(t.module + ".scales");
    std::vector<uint32_t> ref(cols * bits / 32);
    std::vector<float> s(cols / g), b(cols / g);
    for (size_t r = 0; r < rows; ++r) {
      const std::vector<float> w = f16_row_as_f32(src, t.sources[0], r, cols);
      kernels::quantize_row_reference(w.data(), cols, bits, g, ref.data(), s.data(), b.data());
      ASSERT_EQ(0, std::memcmp(ref.data(), packed + r * ref.size(), ref.size() * 4)) << t.module << " row " << r;
      for (size_t k = 0; k < s.size(); ++k) {
        uint16_t stored;
        std::memcpy(&stored, scales.data() + (r * s.size() + k) * 2, 2);
        ASSERT_EQ(stored, f32_to_f16(s[k])) << t.module << " scale " << r << "," << k;
      }
    }
  }
  EXPECT_EQ(kept, 7u);  // layer 1: q, k, v, o, gate, up, down
  EXPECT_GT(quantized, 20u);
}

TEST_F(MixedPlan, SummaryReportsTheTrueBitsPerWeight) {
  const quant::ModelSummary s = quant::summarize_model(*dir_ / "q");
  uint64_t bytes = 0, params = 0;
  for (const auto& t : report_->plan.tensors) {
    bytes += t.output_bytes();
    params += static_cast<uint64_t>(t.numel());
  }
  EXPECT_EQ(s.tensor_bytes, bytes);
  EXPECT_EQ(s.params, params);
  EXPECT_DOUBLE_EQ(s.bits_per_weight, 8.0 * bytes / params);
  std::map<std::string, int> setting;  // bits * 1000 + group size, 0 for float
  for (const auto& t : s.tensors) setting[t.name] = t.bits * 1000 + t.group_size;
  EXPECT_EQ(setting.at("model.layers.0.self_attn.k_proj.weight"), 8032);
  EXPECT_EQ(setting.at("model.layers.0.mlp.up_proj.weight"), 4064);
  EXPECT_EQ(setting.at("model.layers.1.mlp.up_proj.weight"), 0);
}

TEST_F(MixedPlan, EngineLogitsEqualTheDequantizedFloat32Model) {
  ThreadPool pool(2);
  quant::DequantizeOptions d;
  d.dtype = DType::kF32;
  d.show_progress = false;
  quant::dequantize_model(*dir_ / "q", *dir_ / "f32", d, pool);
  const Model mixed = Model::load(*dir_ / "q");
  EXPECT_EQ(mixed.layers()[0].attention.q.weight.bits, 8);
  EXPECT_EQ(mixed.layers()[0].attention.q.weight.group_size, 32);
  EXPECT_EQ(mixed.layers()[0].mlp.gate.weight.bits, 4);
  EXPECT_EQ(mixed.layers()[1].attention.q.weight.type, kernels::WeightType::kF16);
  const Model dequantized = Model::load(*dir_ / "f32");
  const std::vector<int32_t> ids = {1, 17, 300, 42, 999, 5, 64, 128};
  Session a(mixed, pool), b(dequantized, pool);
  const auto from_packed = a.forward(ids, true), from_float = b.forward(ids, true);
  const float scale = std::max(1.0f, max_abs(from_float));
  EXPECT_LE(max_abs_diff(from_packed, from_float), 1e-4f * scale);
}

TEST(MixedPlanErrors, OverrideThatMatchesNothingIsRefused) {
  TempDir tmp;
  ThreadPool pool(1);
  quant::QuantizeOptions q;
  q.plan.overrides = {{"no_such_module", io::ModuleQuant{8, 64, "affine"}, ""}};
  q.show_progress = false;
  try {
    quant::quantize_model(kSource, tmp / "q", q, pool);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find("no_such_module"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(tmp / "q"));
}

TEST(MixedPlanErrors, OverrideParsing) {
  EXPECT_EQ(quant::parse_module_override("mlp=6", 64).quant, (io::ModuleQuant{6, 64, "affine"}));
  EXPECT_EQ(quant::parse_module_override("a=b=8:32", 64).pattern, "a=b");
  EXPECT_EQ(quant::parse_module_override("mlp=8:32", 64).quant, (io::ModuleQuant{8, 32, "affine"}));
  EXPECT_EQ(quant::parse_module_override("lm_head=float", 64).quant, std::nullopt);
  for (const char* bad : {"mlp", "=8", "mlp=", "mlp=x", "mlp=8:", "mlp=8:32:1", "mlp=8bit"})
    EXPECT_THROW(quant::parse_module_override(bad, 64), Error) << bad;
}

}  // namespace
}  // namespace quantlab::model
