// Sequential calibration (analysis/sequential_calibration.h): every module's statistics are those of the
// inputs it sees in the quantized model. Recorded layer by layer with the earlier modules rounded in
// memory, they must equal the statistics the quantized file itself gives on the same tokens — which
// holds only if the in-memory rounding is the quantizer's and the layer-streamed passes are the engine's.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "analysis/calibration.h"
#include "analysis/sequential_calibration.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "quant/quantizer.h"
#include "test_support.h"

namespace quantlab::analysis {
namespace {

using quantlab::testing::data_path;
using quantlab::testing::TempDir;

const std::string kMoeFused = data_path("tool-calling/moe-fused-strong-f16");

// ‖a − b‖ / ‖b‖ over all values.
double relative_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d += (a[i] - b[i]) * (a[i] - b[i]);
    n += b[i] * b[i];
  }
  return std::sqrt(d / std::max(n, 1e-300));
}

CalibrationOptions text_calibration(const std::string& model, const std::string& text) {
  CalibrationOptions o;
  o.model_dir = model;
  o.text_path = text;
  o.text_chunk = 40;
  o.show_progress = false;
  o.second_moments = true;
  o.expert_statistics = CalibrationOptions::ExpertStatistics::kMoments;
  return o;
}

TEST(SequentialCalibration, StatisticsAreTheQuantizedModelsOwn) {
  TempDir tmp;
  const std::string text = tmp / "text.txt";
  std::ofstream(text) << "The weather service issued a warning for the coast tonight. Book a table for two at "
                         "seven, then send the invoice to the accounts team and ask whether the delivery can "
                         "move to Friday. Rivers carry sediment to the sea, where it settles into deltas.\n";
  ThreadPool pool(2);
  quant::QuantizeOptions q;
  q.plan.bits = 3;
  q.show_progress = false;
  q.rounding.method = quant::RoundingMethod::kGptq;
  const io::ModelWeights weights = io::ModelWeights::open(kMoeFused);
  const quant::QuantPlan plan =
      quant::make_quant_plan(io::load_model_config(kMoeFused), quant::source_tensors(weights), q.plan);
  const CalibrationStats sequential = calibrate_sequential(text_calibration(kMoeFused, text), plan, q.rounding, pool);

  CalibrationStats moments = sequential;
  ASSERT_TRUE(take_rounding_statistics(moments, q.rounding));
  quant::quantize_model(kMoeFused, tmp / "q", q, pool);
  const CalibrationStats own = calibrate(text_calibration(tmp / "q", text), pool);
  const CalibrationStats on_float = calibrate(text_calibration(kMoeFused, text), pool);

  ASSERT_EQ(sequential.tokens, own.tokens);
  ASSERT_EQ(sequential.modules.size(), own.modules.size());
  double largest = 0, float_gap = 0;
  for (const auto& [module, m] : sequential.modules) {
    const ModuleStats& o = own.modules.at(module);
    EXPECT_EQ(m.tokens, o.tokens) << module;  // the same routing, expert by expert
    ASSERT_EQ(m.xxt.size(), o.xxt.size()) << module;
    largest = std::max(largest, relative_difference(m.xxt, o.xxt));
    if (module.find("layers.3.mlp.switch_mlp.down_proj") != std::string::npos)
      float_gap = relative_difference(m.xxt, on_float.modules.at(module).xxt);
  }
  EXPECT_LE(largest, 1e-5);
  // And they are not the float model's: the check above could tell the two apart.
  EXPECT_GE(float_gap, 1e-3);
}

// The engine's passes and GPTQ's rounding do not depend on the thread count, so neither do the statistics.
TEST(SequentialCalibration, TheSameStatisticsOnAnyNumberOfThreads) {
  TempDir tmp;
  const std::string text = tmp / "text.txt";
  std::ofstream(text) << "Send the quarterly report to finance and remind them the audit starts on Monday.\n";
  quant::RoundingOptions r;
  r.method = quant::RoundingMethod::kGptq;
  const io::ModelWeights weights = io::ModelWeights::open(kMoeFused);
  quant::PlanOptions two_bits;
  two_bits.bits = 2;
  const quant::QuantPlan plan =
      quant::make_quant_plan(io::load_model_config(kMoeFused), quant::source_tensors(weights), two_bits);
  ThreadPool one(1), three(3);
  const CalibrationStats a = calibrate_sequential(text_calibration(kMoeFused, text), plan, r, one);
  const CalibrationStats b = calibrate_sequential(text_calibration(kMoeFused, text), plan, r, three);
  ASSERT_EQ(a.modules.size(), b.modules.size());
  for (const auto& [module, m] : a.modules) {
    EXPECT_EQ(m.xxt, b.modules.at(module).xxt) << module;
    EXPECT_EQ(m.tokens, b.modules.at(module).tokens) << module;
  }
}

TEST(SequentialCalibration, RefusesToRunWithoutInputs) {
  ThreadPool pool(2);
  quant::RoundingOptions r;
  r.method = quant::RoundingMethod::kGptq;
  const io::ModelWeights weights = io::ModelWeights::open(kMoeFused);
  const quant::QuantPlan plan =
      quant::make_quant_plan(io::load_model_config(kMoeFused), quant::source_tensors(weights), {});
  CalibrationOptions none = text_calibration(kMoeFused, "");
  EXPECT_THROW(calibrate_sequential(none, plan, r, pool), Error);
}

}  // namespace
}  // namespace quantlab::analysis
