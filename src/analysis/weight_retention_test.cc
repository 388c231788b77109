// Weight-only retention on the bundled tool-calling fixtures (tests/data/README.md): a dense base, its
// strong LoRA adapter, and the PEFT-fused float16 model.
#include "analysis/weight_retention.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/half.h"
#include "io/safetensors.h"
#include "kernels/affine_reference.h"
#include "quant/convert.h"
#include "quant/quantizer.h"
#include "test_support.h"

namespace quantlab::analysis {
namespace {

using testing::data_path;

const std::string kBase = data_path("tool-calling/dense-base-f16");
const std::string kFused = data_path("tool-calling/dense-fused-strong-f16");
const std::string kAdapter = data_path("tool-calling/dense-lora-strong");

WeightRetention analyze(const std::string& adapter, const std::string& fused, std::vector<int> bits,
                        size_t threads = 2, const std::string& base = kBase) {
  WeightRetentionOptions o;
  o.base_dir = base;
  o.adapter_dir = adapter;
  o.fused_dir = fused;
  o.bits = std::move(bits);
  o.show_progress = false;
  ThreadPool pool(threads);
  return analyze_weight_retention(o, pool);
}

const TensorRetention& find_tensor(const WeightRetention& r, const std::string& name) {
  for (const auto& t : r.tensors)
    if (t.name == name) return t;
  throw std::runtime_error("tensor not analysed: " + name);
}

std::vector<float> read_f32(const io::ModelWeights& w, const std::string& name) {
  const auto& e = w.at(name);
  std::vector<float> out(static_cast<size_t>(e.info->numel()));
  quant::load_as_f32_scalar(e.info->dtype, w.bytes(e).data(), out.size(), out.data());
  return out;
}

// The measures of one tensor recomputed with the scalar MLX reference, in double, straight from the
// definitions in weight_retention.h.
RetentionSums reference_sums(const std::string& name, int bits, int group) {
  const auto base_w = io::ModelWeights::open(kBase), fused_w = io::ModelWeights::open(kFused);
  const auto base = read_f32(base_w, name), fused = read_f32(fused_w, name);
  const size_t cols = static_cast<size_t>(base_w.at(name).info->shape.back()), rows = base.size() / cols;
  std::vector<uint32_t> pb(cols * bits / 32), pf(pb.size());
  std::vector<float> sb(cols / group), bb(sb.size()), sf(sb.size()), bf(sb.size()), deq(cols);
  std::vector<uint8_t> cb(cols), cf(cols);
  RetentionSums s;
  for (size_t r = 0; r < rows; ++r) {
    const float* b = base.data() + r * cols;
    const float* f = fused.data() + r * cols;
    kernels::quantize_row_reference(b, cols, bits, group, pb.data(), sb.data(), bb.data());
    kernels::quantize_row_reference(f, cols, bits, group, pf.data(), sf.data(), bf.data());
    for (size_t g = 0; g < sf.size(); ++g) {  // stored as float16, like the model's dtype
      sf[g] = round_to_f16(sf[g]);
      bf[g] = round_to_f16(bf[g]);
    }
    kernels::dequantize_row_reference(pf.data(), sf.data(), bf.data(), cols, bits, group, deq.data());
    kernels::unpack_codes_reference(pb.data(), cols, bits, cb.data());
    kernels::unpack_codes_reference(pf.data(), cols, bits, cf.data());
    for (size_t c = 0; c < cols; ++c) {
      const double d = double(f[c]) - b[c], k = double(deq[c]) - b[c];
      s.delta_sq += d * d;
      s.kept_dot += k * d;
      s.kept_sq += k * k;
      s.changed += d != 0;
      s.erased += d != 0 && cb[c] == cf[c];
    }
  }
  return s;
}

TEST(WeightRetention, MatchesScalarReferenceOnOneTensor) {
  const std::string name = "model.layers.1.mlp.down_proj.weight";
  const WeightRetention r = analyze("", kFused, {3, 6});
  for (size_t w = 0; w < 2; ++w) {
    const RetentionSums ref = reference_sums(name, r.bits[w], 64);
    const RetentionSums& got = find_tensor(r, name).sums[w];
    ASSERT_GT(ref.changed, 0u);
    EXPECT_EQ(got.changed, ref.changed) << r.bits[w];
    EXPECT_EQ(got.erased, ref.erased) << r.bits[w];
    EXPECT_NEAR(got.delta_sq, ref.delta_sq, 1e-4 * ref.delta_sq);
    EXPECT_NEAR(got.kept(), ref.kept(), 1e-4) << r.bits[w];
    EXPECT_NEAR(got.cosine(), ref.cosine(), 1e-4) << r.bits[w];
  }
}

TEST(WeightRetention, ErasedShareGrowsAndCosineFallsAsBitsFall) {
  const WeightRetention r = analyze("", kFused, {8, 7, 6, 5, 4, 3, 2});
  ASSERT_EQ(r.overall.size(), 7u);
  for (size_t w = 1; w < r.bits.size(); ++w) {
    EXPECT_GT(r.overall[w].erased_share(), r.overall[w - 1].erased_share()) << r.bits[w] << " bits";
    EXPECT_LT(r.overall[w].cosine(), r.overall[w - 1].cosine()) << r.bits[w] << " bits";
    EXPECT_LT(r.overall[w].delta_in_steps(), r.overall[w - 1].delta_in_steps()) << r.bits[w] << " bits";
    // Rounding works like dither: the delta survives on average at every width, even where most of
    // the changed weights keep the base's code. The noise around it is what grows.
    EXPECT_GT(r.overall[w].kept(), 0.9) << r.bits[w] << " bits";
  }
  EXPECT_GT(r.overall.front().cosine(), 0.99);  // 8-bit: the change in the weights is the fine-tune
  EXPECT_LT(r.overall.back().cosine(), 0.6);    // 2-bit: mostly rounding noise
  EXPECT_GT(r.overall.back().erased_share(), 0.5);
  // One step of width halves the step: the delta measured in steps doubles with each bit.
  EXPECT_NEAR(r.overall[0].delta_in_steps() / r.overall[1].delta_in_steps(), 2.0, 0.1);
}

TEST(WeightRetention, AdapterInMemoryAgreesWithTheFusedCheckpoint) {
  const std::vector<int> bits = {8, 4, 2};
  const WeightRetention from_adapter = analyze(kAdapter, "", bits), from_fused = analyze("", kFused, bits);
  EXPECT_EQ(from_adapter.source, "adapter");
  // The adapter covers all 7 projections of 4 layers; the fused model changes exactly those.
  EXPECT_EQ(from_adapter.tensors.size(), 28u);
  EXPECT_EQ(from_fused.tensors.size(), 28u);
  for (size_t w = 0; w < bits.size(); ++w) {
    // PEFT fused in float32 and rounded once to float16, as the in-memory fuse does: the same
    // weights up to a rare last-bit difference in summation order.
    EXPECT_NEAR(from_adapter.overall[w].kept(), from_fused.overall[w].kept(), 2e-3) << bits[w];
    EXPECT_NEAR(from_adapter.overall[w].erased_share(), from_fused.overall[w].erased_share(), 2e-3) << bits[w];
    EXPECT_NEAR(double(from_adapter.overall[w].changed), double(from_fused.overall[w].changed),
                1e-3 * double(from_fused.overall[w].changed));
  }
}

TEST(WeightRetention, IndependentOfThreadCount) {
  const WeightRetention one = analyze(kAdapter, "", {4}, 1), three = analyze(kAdapter, "", {4}, 3);
  ASSERT_EQ(one.tensors.size(), three.tensors.size());
  for (size_t i = 0; i < one.tensors.size(); ++i) {
    EXPECT_EQ(one.tensors[i].sums[0].kept_dot, three.tensors[i].sums[0].kept_dot) << one.tensors[i].name;
    EXPECT_EQ(one.tensors[i].sums[0].erased, three.tensors[i].sums[0].erased) << one.tensors[i].name;
  }
}

TEST(WeightRetention, AggregatesLayersWeightedByDeltaNorm) {
  const WeightRetention r = analyze("", kFused, {4});
  ASSERT_EQ(r.layers.size(), 4u);  // layers 0..3; no embedding delta
  double dot = 0, sq = 0;
  for (const auto& t : r.tensors)
    if (t.layer == 2) {
      dot += t.sums[0].kept_dot;
      sq += t.sums[0].delta_sq;
    }
  EXPECT_EQ(r.layers[2].layer, 2);
  EXPECT_NEAR(r.layers[2].sums[0].kept(), dot / sq, 1e-12);
  double all_dot = 0, all_sq = 0;
  for (const auto& l : r.layers) {
    all_dot += l.sums[0].kept_dot;
    all_sq += l.sums[0].delta_sq;
  }
  EXPECT_NEAR(r.overall[0].kept(), all_dot / all_sq, 1e-12);
}

TEST(WeightRetention, LayersLostFirstOrdersByLossWidth) {
  WeightRetention r;
  r.bits = {8, 4, 2};
  auto sums = [](double cosine) {  // ‖ΔW‖ = ‖kept‖ = 1: the cosine is the dot product
    RetentionSums s;
    s.delta_sq = 1;
    s.kept_sq = 1;
    s.kept_dot = cosine;
    return s;
  };
  r.layers = {{0, {sums(0.99), sums(0.9), sums(0.75)}},   // never below 0.707
              {1, {sums(0.95), sums(0.6), sums(0.2)}},    // lost at 4 bits
              {2, {sums(0.97), sums(0.8), sums(0.3)}},    // lost at 2 bits
              {3, {sums(0.9), sums(0.65), sums(0.05)}}};  // lost at 4 bits, less left at 2
  const auto order = layers_lost_first(r);
  ASSERT_EQ(order.size(), 4u);
  EXPECT_EQ(order[0].layer, 3);
  EXPECT_EQ(order[0].loss_bits, 4);
  EXPECT_EQ(order[1].layer, 1);
  EXPECT_EQ(order[2].layer, 2);
  EXPECT_EQ(order[2].loss_bits, 2);
  EXPECT_EQ(order[3].layer, 0);
  EXPECT_EQ(order[3].loss_bits, 0);
}

// A model quantized elsewhere (any rounding method) is measured from its stored codes: measured on a
// round-to-nearest file, that gives the in-memory analysis's numbers (the stored model dequantizes with
// one fma where the analysis rounds twice: 1 ulp). The MoE model checks the stacked experts' offsets.
TEST(WeightRetention, AStoredModelMeasuresAsItsInMemoryRounding) {
  for (const auto& [base, fused] : {std::pair{kBase, kFused},
                                    std::pair{data_path("tool-calling/moe-base-f16"),
                                              data_path("tool-calling/moe-fused-strong-f16")}}) {
    SCOPED_TRACE(fused);
    testing::TempDir tmp;
    ThreadPool pool(2);
    quant::QuantizeOptions q;
    q.plan.bits = 3;
    q.show_progress = false;
    quant::quantize_model(fused, tmp / "q3", q, pool);
    const WeightRetention memory = analyze("", fused, {3}, 2, base);
    WeightRetentionOptions o;
    o.base_dir = base;
    o.fused_dir = fused;
    o.bits = {3};
    o.quantized_dir = tmp / "q3";
    o.show_progress = false;
    const WeightRetention stored = analyze_weight_retention(o, pool);
    ASSERT_EQ(stored.tensors.size(), memory.tensors.size());
    EXPECT_NEAR(stored.overall[0].cosine(), memory.overall[0].cosine(), 1e-5);
    EXPECT_NEAR(stored.overall[0].kept(), memory.overall[0].kept(), 1e-5);
    EXPECT_EQ(stored.overall[0].changed, memory.overall[0].changed);
    for (size_t i = 0; i < stored.tensors.size(); ++i)
      EXPECT_NEAR(stored.tensors[i].sums[0].cosine(), memory.tensors[i].sums[0].cosine(), 1e-4) << stored.tensors[i].name;
    o.bits = {3, 4};
    EXPECT_THROW(analyze_weight_retention(o, pool), Error);  // a stored model has one width
  }
}

TEST(WeightRetention, RejectsAnAdapterForAnotherBase) {
  try {
    analyze(kAdapter, "", {4}, 1, data_path("tool-calling/moe-base-f16"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp"), std::string::npos) << e.what();
  }
}

TEST(WeightRetention, RejectsAFusedModelOfAnotherShape) {
  try {
    analyze("", data_path("tool-calling/moe-fused-strong-f16"), {4});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("model.layers."), std::string::npos) << e.what();
  }
}

TEST(WeightRetention, NeedsExactlyOneFineTuneSource) {
  EXPECT_THROW(analyze("", "", {4}), Error);
  EXPECT_THROW(analyze(kAdapter, kFused, {4}), Error);
}

}  // namespace
}  // namespace quantlab::analysis
