// The mixed-precision pipeline's mechanics (issue 15): calibration statistics cover every quantizable
// module (each expert separately), sensitivity falls with the width, allocation stays within its
// budget and spends it, the one-command form writes its plan beside the model, and bad inputs are
// refused with the file or budget named.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>

#include "analysis/allocation.h"
#include "analysis/calibration.h"
#include "analysis/mixed_quantize.h"
#include "analysis/sensitivity.h"
#include "core/error.h"
#include "analysis/testing.h"
#include "quant/model_summary.h"
#include "test_support.h"

namespace quantlab::analysis {
namespace {

using namespace quantlab::testing::tool_calling;
using quantlab::testing::data_path;
using quantlab::testing::TempDir;

const std::string kMoeFused = data_path("tool-calling/moe-fused-strong-f16");

CalibrationStats calibrate_on_seed5(const std::string& model, ThreadPool& pool,
                                    std::optional<CalibrationOptions::ExpertStatistics> experts = std::nullopt) {
  return test_helpers::calibrate_on(model, kSeed5, pool, experts);
}

TEST(Calibration, EveryQuantizableModuleHasStatisticsAndExpertsTheirOwn) {
  ThreadPool pool(2);
  const CalibrationStats s = calibrate_on_seed5(kMoeFused, pool);
  EXPECT_GT(s.tokens, 5u * 50);
  const ModuleStats& q = s.modules.at("model.layers.0.self_attn.q_proj");
  EXPECT_EQ(q.experts, 1u);
  EXPECT_EQ(q.tokens[0], static_cast<double>(s.tokens));  // every token passes every layer
  const ModuleStats& down = s.modules.at("model.layers.0.mlp.switch_mlp.down_proj");
  ASSERT_GT(down.experts, 1u);
  double routed = 0;
  for (double t : down.tokens) routed += t;
  const ModuleStats& router = s.modules.at("model.layers.0.mlp.gate");
  // Each token goes to k experts: the experts' token counts add up to k per token.
  EXPECT_NEAR(routed / router.tokens[0], std::round(routed / router.tokens[0]), 1e-9);
  EXPECT_GE(routed / router.tokens[0], 2.0);
  for (double v : q.mean_x2) EXPECT_GE(v, 0.0);
  // Written and read back unchanged (F32 storage of the means).
  TempDir tmp;
  write_stats(s, tmp / "stats.safetensors");
  const CalibrationStats back = read_stats(tmp / "stats.safetensors");
  EXPECT_EQ(back.modules.size(), s.modules.size());
  EXPECT_EQ(back.tokens, s.tokens);
  EXPECT_FLOAT_EQ(static_cast<float>(back.modules.at("model.layers.0.self_attn.q_proj").mean_x2[3]),
                  static_cast<float>(q.mean_x2[3]));
}

// Experts' routed inputs instead of their E[x xᵀ] (what a Qwen3-30B-A3B-sized model gets): each token's
// input once per MoE layer with the experts it went to (down: each routed row with its expert); the
// moments they give are the recorded ones to bfloat16 precision; the file keeps them and refuses routes
// to experts that do not exist.
TEST(Calibration, RoutedInputsAreEachExpertsRowsAndSurviveTheFile) {
  ThreadPool pool(2);
  CalibrationStats s = calibrate_on_seed5(kMoeFused, pool, CalibrationOptions::ExpertStatistics::kInputs);
  const CalibrationStats full = calibrate_on_seed5(kMoeFused, pool, CalibrationOptions::ExpertStatistics::kMoments);
  const ModuleStats& gate = s.modules.at("model.layers.1.mlp.switch_mlp.gate_proj");
  const ModuleStats& down = s.modules.at("model.layers.1.mlp.switch_mlp.down_proj");
  ASSERT_TRUE(gate.inputs && down.inputs);
  EXPECT_TRUE(gate.xxt.empty());
  EXPECT_FALSE(s.modules.at("model.layers.1.self_attn.q_proj").xxt.empty());  // dense modules keep E[x xᵀ]
  EXPECT_EQ(gate.inputs->rows, s.tokens);
  EXPECT_EQ(gate.inputs->route_width, 2u);
  EXPECT_EQ(down.inputs->route_width, 1u);
  const ModuleStats& full_down = full.modules.at("model.layers.1.mlp.switch_mlp.down_proj");
  for (size_t e = 0; e < down.experts; ++e) {
    const std::vector<float> x = quant::expert_inputs(*down.inputs, e);
    ASSERT_EQ(x.size(), static_cast<size_t>(down.tokens[e]) * down.cols) << "expert " << e;
    if (x.empty()) continue;
    const auto h = quant::second_moments_of(x, x.size() / down.cols, down.cols, pool);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < h.size(); ++i) {
      worst = std::max(worst, std::abs(h[i] - full_down.xxt[e * h.size() + i]));
      scale = std::max(scale, std::abs(h[i]));
    }
    EXPECT_LT(worst, 1e-2 * scale) << "expert " << e;
  }
  TempDir tmp;
  write_stats(s, tmp / "stats.safetensors");
  const CalibrationStats back = read_stats(tmp / "stats.safetensors");
  const auto& read_gate = back.modules.at("model.layers.1.mlp.switch_mlp.gate_proj");
  ASSERT_TRUE(read_gate.inputs);
  EXPECT_EQ(read_gate.inputs->values, gate.inputs->values);
  EXPECT_EQ(read_gate.inputs->routes, gate.inputs->routes);
  s.modules.at("model.layers.1.mlp.switch_mlp.gate_proj").inputs->routes[3] = 99;
  write_stats(s, tmp / "bad.safetensors");
  try {
    read_stats(tmp / "bad.safetensors");
    ADD_FAILURE() << "a route to expert 99 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.1.mlp.switch_mlp.gate_proj.routes"), std::string::npos) << e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
  }
}

class Pipeline : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new TempDir();
    ThreadPool pool(2);
    write_stats(calibrate_on_seed5(kFused, pool), *tmp_ / "stats.safetensors");
    SensitivityOptions o;
    o.fused_dir = kFused;
    o.base_dir = kBase;
    o.stats_path = *tmp_ / "stats.safetensors";
    o.bits = {2, 3, 4, 6, 8};
    o.show_progress = false;
    sens_ = new Sensitivity(analyze_sensitivity(o, pool));
  }
  static void TearDownTestSuite() {
    delete sens_;
    delete tmp_;
  }
  static TempDir* tmp_;
  static Sensitivity* sens_;
};
TempDir* Pipeline::tmp_ = nullptr;
Sensitivity* Pipeline::sens_ = nullptr;

TEST_F(Pipeline, ErrorFallsAndBytesGrowWithTheWidth) {
  ASSERT_EQ(sens_->tensors.size(), 29u);  // 4 layers x 7 projections + the tied embedding
  EXPECT_TRUE(sens_->has_base);
  for (const auto& t : sens_->tensors) {
    ASSERT_EQ(t.candidates.size(), 5u) << t.module;
    for (size_t i = 1; i < t.candidates.size(); ++i) {
      EXPECT_LT(t.candidates[i].output_error, t.candidates[i - 1].output_error) << t.module;
      EXPECT_GT(t.candidates[i].bytes, t.candidates[i - 1].bytes) << t.module;
      EXPECT_LE(t.candidates[i].finetune_error, t.candidates[i].output_error + 1e-12) << t.module;
    }
  }
  // Round trip through the file.
  const std::string path = *tmp_ / "sens.json";
  std::ofstream(path) << sensitivity_json(*sens_).dump();
  const Sensitivity back = read_sensitivity(path);
  ASSERT_EQ(back.tensors.size(), sens_->tensors.size());
  EXPECT_DOUBLE_EQ(back.tensors[5].candidates[2].output_error, sens_->tensors[5].candidates[2].output_error);
}

TEST_F(Pipeline, AllocationStaysWithinAndSpendsItsBudget) {
  const uint64_t u3 = uniform_bytes(*sens_, 3, 64), u4 = uniform_bytes(*sens_, 4, 64);
  for (Objective o : {Objective::kOutput, Objective::kFinetune, Objective::kBoth}) {
    const Allocation a = allocate(*sens_, (u3 + u4) / 2, o);
    EXPECT_LE(a.bytes, (u3 + u4) / 2);
    // Within one tensor's step of the budget: the greedy fill leaves less than the largest step unused.
    EXPECT_GT(a.bytes, u3);
    // More budget never raises the error.
    const Allocation more = allocate(*sens_, u4, o);
    EXPECT_LE(more.error, a.error);
  }
  // At exactly uniform 4-bit's bytes, the output objective's error is no worse than uniform 4-bit's.
  double uniform4 = 0;
  for (const auto& t : sens_->tensors)
    for (const auto& c : t.candidates)
      if (c.bits == 4) uniform4 += c.output_error;
  EXPECT_LE(allocate(*sens_, u4, Objective::kOutput).error, uniform4 * (1 + 1e-12));
}

TEST_F(Pipeline, ImpossibleBudgetsAndMissingBasesAreRefused) {
  try {
    allocate(*sens_, 1000, Objective::kOutput);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find("budget of 1000 bytes"), std::string::npos) << e.what();
  }
  Sensitivity no_base = *sens_;
  no_base.has_base = false;
  EXPECT_THROW(allocate(no_base, uniform_bytes(no_base, 8, 64), Objective::kFinetune), Error);
}

TEST_F(Pipeline, StatisticsOfAnotherModelAreRefused) {
  ThreadPool pool(2);
  TempDir tmp;
  write_stats(calibrate_on_seed5(kMoeFused, pool), tmp / "moe.safetensors");
  SensitivityOptions o;
  o.fused_dir = kFused;
  o.stats_path = tmp / "moe.safetensors";
  o.show_progress = false;
  try {
    analyze_sensitivity(o, pool);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("moe.safetensors was recorded on another model"), std::string::npos)
        << e.what();
  }
}

TEST_F(Pipeline, OneCommandWritesThePlanBesideTheModel) {
  ThreadPool pool(2);
  MixedQuantizeOptions o;
  o.fused_dir = kFused;
  o.out_dir = *tmp_ / "q";
  o.suite_path = kSeed5;
  o.tools_path = kTools;
  o.base_dir = kBase;
  o.budget.target_bpw = 3.8;
  o.max_tokens = 8;
  // The gains' probes (29 forward passes) are measured by Gains.* and ModuleProbe.*; without them this
  // test stays cheap under the sanitizers, where it is the one-command path's only test.
  o.measure_gains = false;
  o.show_progress = false;
  const MixedQuantizeResult r = quantize_to_budget(o, pool);
  const quant::ModelSummary s = quant::summarize_model(o.out_dir);
  EXPECT_LE(s.bits_per_weight, 3.8);
  EXPECT_GT(s.bits_per_weight, 3.5);
  EXPECT_DOUBLE_EQ(s.bits_per_weight, r.allocation.bits_per_weight());
  EXPECT_TRUE(std::filesystem::exists(o.out_dir + "/quantlab_plan.json"));
}

}  // namespace
}  // namespace quantlab::analysis
