// Measured module gains (issue 15): probing each module alone at 3 bits converts the sensitivity proxy
// into KL units, and that conversion predicts the modules' ranking at another width (the proxy alone
// does not); probes leave the model as they found it; and the allocation that uses the gains beats
// uniform widths and mlx-lm's recipes at the same size on dev40 (calibrated on seed5, other queries).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "analysis/allocation.h"
#include "analysis/calibration.h"
#include "analysis/module_gain.h"
#include "analysis/output_retention.h"
#include "analysis/sensitivity.h"
#include "core/error.h"
#include "eval/stats.h"
#include "quant/model_summary.h"
#include "quant/plan_file.h"
#include "quant/quantizer.h"
#include "test_support.h"

namespace quantlab::analysis {
namespace {

using namespace quantlab::testing::tool_calling;
using quantlab::testing::TempDir;

GainOptions seed5_gains(size_t max_tokens) {
  GainOptions g;
  g.fused_dir = kFused;
  g.suite_path = kSeed5;
  g.tools_path = kTools;
  g.max_tokens = max_tokens;
  g.show_progress = false;
  return g;
}

Sensitivity seed5_sensitivity(const TempDir& tmp, std::vector<int> bits, size_t max_tokens, ThreadPool& pool) {
  CalibrationOptions c;
  c.model_dir = kFused;
  c.suite_path = kSeed5;
  c.tools_path = kTools;
  c.max_tokens = max_tokens;
  c.show_progress = false;
  write_stats(calibrate(c, pool), tmp / "stats.safetensors");
  SensitivityOptions o;
  o.fused_dir = kFused;
  o.base_dir = kBase;
  o.stats_path = tmp / "stats.safetensors";
  o.bits = std::move(bits);
  o.show_progress = false;
  Sensitivity s = analyze_sensitivity(o, pool);
  measure_gains(seed5_gains(max_tokens), s, pool);
  return s;
}

const Candidate& at_bits(const TensorSensitivity& t, int bits) {
  for (const Candidate& c : t.candidates)
    if (c.bits == bits) return c;
  throw std::runtime_error("no candidate");
}

// The Spearman check and the file round trip share one (expensive) sensitivity with gains.
TEST(Gains, MeasuredAtThreeBitsTheyRankTheModulesAtFourBitsAndSurviveTheFile) {
  TempDir tmp;
  ThreadPool pool(2);
  const Sensitivity sens = seed5_sensitivity(tmp, {3, 4}, 8, pool);
  ModuleProbe probe(seed5_gains(8), pool);
  ASSERT_TRUE(sens.has_gains);
  ASSERT_EQ(sens.tensors.size(), 29u);
  std::vector<double> proxy3, measured3, predicted4, measured4;
  for (const auto& t : sens.tensors) {
    ASSERT_EQ(t.probe.bits, 3) << t.module;
    EXPECT_GT(t.probe.kl, 0.0) << t.module;
    proxy3.push_back(at_bits(t, 3).output_error);
    measured3.push_back(t.probe.kl);
    predicted4.push_back(t.probe.gain * at_bits(t, 4).output_error);
    measured4.push_back(probe.kl_with(t.module, 4, 64));
  }
  const double raw = eval::spearman(proxy3, measured3), calibrated = eval::spearman(predicted4, measured4);
  RecordProperty("spearman_proxy_at_3_bits", std::to_string(raw));
  RecordProperty("spearman_gain_at_4_bits", std::to_string(calibrated));
  // The aim (>= 0.8) holds for the gain-scaled proxy at a width it was not measured at; the
  // proxy alone ranks the modules far worse (docs/mixed-precision.md records both).
  EXPECT_GE(calibrated, 0.8) << "proxy alone: " << raw;
  EXPECT_GT(calibrated, raw);

  // Through the file, and into the allocation: the objective is the predicted KL, Σ gain · error.
  const std::string path = tmp / "sens.json";
  std::ofstream(path) << sensitivity_json(sens).dump();
  const Sensitivity back = read_sensitivity(path);
  ASSERT_TRUE(back.has_gains);
  EXPECT_DOUBLE_EQ(back.tensors[7].probe.gain, sens.tensors[7].probe.gain);
  const Allocation a = allocate(back, uniform_bytes(back, 3, 64), Objective::kOutput);
  double predicted = 0;
  for (size_t i = 0; i < back.tensors.size(); ++i)
    predicted += back.tensors[i].probe.gain * back.tensors[i].candidates[a.choice[i]].output_error;
  EXPECT_DOUBLE_EQ(a.predicted_kl, predicted);
  EXPECT_DOUBLE_EQ(a.error, predicted);
  // A file that says it has gains but lacks a tensor's probe is refused, naming the tensor.
  nlohmann::ordered_json j = sensitivity_json(sens);
  j["tensors"][4].erase("probe");
  std::ofstream(path) << j.dump();
  try {
    read_sensitivity(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensors[4]: 'probe' missing"), std::string::npos) << e.what();
  }
}

// A probe on two queries: cheap enough for the sanitizer build.
ModuleProbe two_query_probe(ThreadPool& pool) {
  GainOptions g = seed5_gains(6);
  g.max_queries = 2;
  return ModuleProbe(g, pool);
}

TEST(ModuleProbe, LeavesTheModelAsItFoundIt) {
  ThreadPool pool(2);
  ModuleProbe probe = two_query_probe(pool);
  EXPECT_EQ(probe.queries(), 2u);
  const std::string q0 = "model.layers.0.self_attn.q_proj", down3 = "model.layers.3.mlp.down_proj";
  const double first = probe.kl_with(q0, 3, 64);
  const double other = probe.kl_with(down3, 2, 64);
  EXPECT_EQ(probe.kl_with(q0, 3, 64), first);  // down3 was restored, and the probe is deterministic
  EXPECT_NE(first, other);
  EXPECT_LT(probe.kl_with(q0, 8, 64), first);  // finer rounding, smaller divergence
  // The tied embedding is probed as both the input table and the output head.
  EXPECT_GT(probe.kl_with("model.embed_tokens", 3, 64), 0.0);
}

TEST(ModuleProbe, AnUnknownModuleIsNamed) {
  ThreadPool pool(2);
  ModuleProbe probe = two_query_probe(pool);
  try {
    probe.kl_with("model.layers.9.self_attn.q_proj", 3, 64);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("no module 'model.layers.9.self_attn.q_proj'"), std::string::npos) << e.what();
  }
}

// The claim of the issue, end to end: at the bits per weight of uniform 3-bit and of mlx-lm's recipes
// (within 1 %), the allocated plan has a lower KL(fused ‖ quantized) on dev40 and a higher output
// retention; between uniform 2 and 3 bits it decides far more queries right than uniform 2-bit.
TEST(AllocatedPlan, BeatsUniformWidthsAndRecipesOfTheSameSizeOnDev40) {
  TempDir tmp;
  ThreadPool pool(2);
  const Sensitivity sens = seed5_sensitivity(tmp, {2, 3, 4, 5, 6, 8}, 16, pool);
  auto quantize = [&](const std::string& name, quant::PlanOptions plan) {
    quant::QuantizeOptions q;
    q.plan = std::move(plan);
    q.show_progress = false;
    const std::string dir = tmp / name;
    quant::quantize_model(kFused, dir, q, pool);
    return dir;
  };
  auto allocated = [&](const std::string& name, uint64_t bytes) {
    const Allocation a = allocate(sens, bytes, Objective::kOutput);
    return quantize(name, quant::plan_options_from_json(allocation_plan_json(sens, a, Objective::kOutput, "test"), "plan"));
  };
  const std::vector<std::pair<std::string, quant::PlanOptions>> references = {
      {"uniform-3", {3, 64, {}, {}, ""}}, {"mixed_2_6", {4, 64, {}, {}, "mixed_2_6"}},
      {"mixed_3_4", {4, 64, {}, {}, "mixed_3_4"}}, {"mixed_3_6", {4, 64, {}, {}, "mixed_3_6"}}};
  std::vector<std::pair<std::string, std::string>> models = {{"uniform-2", quantize("uniform-2", {2, 64, {}, {}, ""})}};
  const double u2_bpw = quant::summarize_model(models[0].second).bits_per_weight;
  models.push_back({"allocated-2.75", allocated("a-2.75", static_cast<uint64_t>(2.75 * double(total_parameters(sens)) / 8))});
  for (const auto& [name, plan] : references) {
    const std::string dir = quantize(name, plan);
    const quant::ModelSummary ref = quant::summarize_model(dir);
    const std::string mine = allocated("a-" + name, ref.tensor_bytes);
    const double bpw = quant::summarize_model(mine).bits_per_weight;
    EXPECT_LE(bpw, ref.bits_per_weight) << name;
    EXPECT_GE(bpw, 0.99 * ref.bits_per_weight) << name;
    models.push_back({name, dir});
    models.push_back({"allocated-" + name, mine});
  }
  OutputRetentionOptions o;
  o.base_dir = kBase;
  o.fused_dir = kFused;
  o.suite_path = kDev40;
  o.tools_path = kTools;
  o.max_tokens = 16;
  o.show_progress = false;
  const OutputRetention r = compare_outputs(o, models, pool);
  ASSERT_EQ(r.quantized.size(), 2 + 2 * references.size());
  for (size_t i = 2; i < r.quantized.size(); i += 2) {
    const ModelDivergence &ref = r.quantized[i], &mine = r.quantized[i + 1];
    EXPECT_LT(mine.kl_reply, ref.kl_reply) << ref.label;
    EXPECT_LT(mine.kl_first, ref.kl_first) << ref.label;
    EXPECT_GT(mine.retention_reply, ref.retention_reply) << ref.label;
    EXPECT_GE(mine.correct, ref.correct) << ref.label;
    RecordProperty(ref.label, fmt::format("KL reply {:.5f} vs allocated {:.5f}", ref.kl_reply, mine.kl_reply));
  }
  const ModelDivergence &u2 = r.quantized[0], &a275 = r.quantized[1];
  EXPECT_GT(2.75, u2_bpw);
  EXPECT_GE(a275.correct, u2.correct + 3) << "uniform 2-bit decides " << u2.correct << " of " << r.queries;
  EXPECT_LT(a275.kl_reply, u2.kl_reply / 4);
}

}  // namespace
}  // namespace quantlab::analysis
