// The sweep's own logic (widths, resume, verdicts, outputs) with a stand-in for the bench runner, on
// the bundled fused model. The end-to-end sweep through real bench child processes is in
// src/cli/sweep_test.cc.
#include "analysis/sweep.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "core/mapped_file.h"
#include "test_support.h"

namespace quantlab::analysis {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

using testing::tool_calling::kBase;
using testing::tool_calling::kFused;

// A bench stand-in: disk size from the quantized files, memory equal to it, decode speed inversely
// proportional to it, and `right[bits]` of 5 queries right.
struct FakeBench {
  std::map<int, size_t> right;
  std::map<std::string, size_t> right_by_name = {};  // mixed plans and recipes, by name
  int calls = 0;
  int fail_at_bits = 0;  // throw when asked to measure this width (an interrupted sweep)
  bool with_plan = false;  // attach a plan prediction (all widths but 6: a warning instead)

  eval::ModelResult operator()(const std::string& name, const std::string& dir) {
    const int bits = std::isdigit(static_cast<unsigned char>(name[0])) ? std::stoi(name) : 0;
    if (bits != 0 && bits == fail_at_bits) throw Error(ErrorKind::kIo, "interrupted");
    ++calls;
    eval::ModelResult r;
    r.name = name;
    r.dir = dir;
    r.ok = true;
    r.info.bits = bits;
    r.info.disk_bytes = io::ModelWeights::open(dir).disk_bytes();
    r.memory.weights_mapped = r.info.disk_bytes;
    eval::SpeedRun run;
    run.decode_tokens = 100;
    run.decode_seconds = double(r.info.disk_bytes) / 1e7;
    r.speed.runs = {run};
    const size_t right_here = bits ? right.at(bits) : right_by_name.at(name);
    for (size_t i = 0; i < 5; ++i) {
      eval::QueryResult q;
      q.id = "q" + std::to_string(i);
      q.score.correct = i < right_here;
      r.queries.push_back(q);
    }
    r.accuracy.overall = eval::make_tally(right_here, 5);
    if (with_plan && bits == 6) r.plan_warning = "the plan cannot describe this model: test";
    if (with_plan && bits != 6) {
      eval::PlanPrediction p;
      p.bits = bits;
      p.group_size = 64;
      p.tensor_bytes = r.info.disk_bytes - 1000;
      p.header_bytes = 500;
      p.kv_cache_bytes = 4000;
      p.bytes_per_token = r.info.disk_bytes / 2;
      p.bandwidth_gb_per_s = 10;
      r.plan = p;
    }
    return r;
  }
};

SweepOptions options(const std::string& out, std::vector<int> bits) {
  SweepOptions o;
  o.fused_dir = kFused;
  o.base_dir = kBase;
  o.bits = std::move(bits);
  o.out_dir = out;
  o.bench.suite = testing::tool_calling::kSeed5;
  o.bench.suite_queries = 5;
  o.bench.criteria = eval::default_criteria();
  o.show_progress = false;
  return o;
}

SweepResult sweep(const SweepOptions& o, FakeBench& bench) {
  ThreadPool pool(2);
  return run_sweep(o, std::ref(bench), pool);
}

const SweepWidth& width(const SweepResult& r, int bits) {
  for (const auto& w : r.widths)
    if (w.bits == bits) return w;
  throw std::runtime_error("no width " + std::to_string(bits));
}

TEST(Sweep, FindsTheLowestViableAndOptimalWidths) {
  TempDir out;
  FakeBench bench{{{8, 5}, {6, 5}, {5, 5}, {4, 4}, {3, 2}}};
  const SweepResult r = sweep(options(out.path(), {6, 5, 4, 3}), bench);  // the 8-bit baseline is added
  ASSERT_EQ(r.widths.size(), 5u);
  EXPECT_EQ(r.widths.front().bits, 8);
  EXPECT_EQ(r.widths.back().bits, 3);
  EXPECT_EQ(r.baseline, "8-bit");
  EXPECT_FALSE(width(r, 8).comparison.has_value());
  // Disk against 8-bit (tiny model, f16 norms and scales): 6-bit about 23 % smaller, short of the 25 %
  // that minimum viable asks (the very case of ARCHITECTURE.md); 5-bit about 35 % smaller and fully
  // right: optimal. 4-bit is 80 % right, 3-bit 40 %.
  const double disk8 = double(width(r, 8).result.info.disk_bytes);
  EXPECT_LT(1 - width(r, 6).result.info.disk_bytes / disk8, 0.25);
  EXPECT_GT(1 - width(r, 5).result.info.disk_bytes / disk8, 0.30);
  EXPECT_EQ(width(r, 6).comparison->verdict, eval::Verdict::kFailure);
  EXPECT_EQ(width(r, 5).comparison->verdict, eval::Verdict::kOptimal);
  EXPECT_EQ(width(r, 4).comparison->verdict, eval::Verdict::kMinimumViable);
  EXPECT_EQ(width(r, 3).comparison->verdict, eval::Verdict::kFailure);
  EXPECT_EQ(r.lowest_minimum_viable, 4);
  EXPECT_EQ(r.lowest_optimal, 5);
  // With a base, each width carries the weight-only retention, falling with the bits.
  ASSERT_TRUE(width(r, 3).retention.has_value());
  EXPECT_GT(width(r, 8).retention->cosine(), width(r, 3).retention->cosine());
  for (const char* file : {"results.json", "report.md", "chart.svg", "results/q6-g64.json", "models/q3-g64/config.json"})
    EXPECT_TRUE(fs::exists(out / file)) << file;
  const auto j = nlohmann::ordered_json::parse(read_text_file(out / "results.json"));
  EXPECT_EQ(j["schema"], "quantlab.sweep/1");
  EXPECT_EQ(j["lowest_minimum_viable"], 4);
  EXPECT_EQ(j["lowest_optimal"], 5);
  EXPECT_EQ(j["widths"].size(), 5u);
  EXPECT_EQ(j["bench"]["comparisons"].size(), 4u);
  const std::string md = read_text_file(out / "report.md");
  EXPECT_NE(md.find("Lowest width that is minimum viable: 4-bit. Lowest width that is optimal: 5-bit."), std::string::npos);
  EXPECT_NE(md.find("chart.svg"), std::string::npos);
}

TEST(Sweep, ResumesFromWhatIsDone) {
  TempDir out;
  FakeBench first{{{8, 5}, {6, 5}, {4, 3}}};
  first.fail_at_bits = 4;
  EXPECT_THROW(sweep(options(out.path(), {8, 6, 4}), first), Error);
  EXPECT_EQ(first.calls, 2);  // 8 and 6 measured, then interrupted
  EXPECT_FALSE(fs::exists(out / "results.json"));

  FakeBench second{{{8, 5}, {6, 5}, {4, 3}}};
  const SweepResult r = sweep(options(out.path(), {8, 6, 4}), second);
  EXPECT_EQ(second.calls, 1);  // only 4-bit
  EXPECT_FALSE(width(r, 8).benched_now);
  EXPECT_FALSE(width(r, 8).quantized_now);
  EXPECT_TRUE(width(r, 4).benched_now);
  EXPECT_EQ(width(r, 6).result.accuracy.overall.correct, 5u);  // read back from results/q6-g64.json

  FakeBench third{{{8, 5}, {6, 5}, {4, 3}}};
  sweep(options(out.path(), {8, 6, 4}), third);
  EXPECT_EQ(third.calls, 0);

  SweepOptions changed = options(out.path(), {8, 6, 4});
  changed.bench.max_tokens = 7;  // results measured with other settings are not reused
  FakeBench fourth{{{8, 5}, {6, 5}, {4, 3}}};
  sweep(changed, fourth);
  EXPECT_EQ(fourth.calls, 3);
}

// Each width's plan prediction stands next to its measurement in results.json and report.md, and a
// reused width keeps the plan it was measured with.
TEST(Sweep, ShowsThePlanNextToEachWidth) {
  TempDir out;
  FakeBench bench{{{8, 5}, {6, 5}}};
  bench.with_plan = true;
  SweepOptions o = options(out.path(), {8, 6});
  o.machine.bandwidth_gb_per_s = 10;
  o.machine.bandwidth_source = "given (--bandwidth)";
  sweep(o, bench);
  auto j = nlohmann::ordered_json::parse(read_text_file(out / "results.json"));
  const auto& w8 = j["widths"][0];
  ASSERT_TRUE(w8["plan"].is_object()) << w8.dump(2);
  const double disk = w8["disk_bytes"].get<double>();
  EXPECT_EQ(w8["plan"]["disk_bytes"].get<double>(), disk - 500);
  EXPECT_DOUBLE_EQ(w8["plan"]["disk_measured_over_predicted"].get<double>(), disk / (disk - 500));
  EXPECT_DOUBLE_EQ(w8["plan"]["memory_measured_over_predicted"].get<double>(), disk / (disk - 1000 + 4000));
  // Bound: 10 GB/s over half the disk bytes per token; the stand-in decodes 100 tokens in disk / 1e7 s.
  const double bound = 10e9 / double(uint64_t(disk) / 2);
  EXPECT_DOUBLE_EQ(w8["plan"]["decode_tps_bound"].get<double>(), bound);
  EXPECT_NEAR(w8["plan"]["decode_fraction_of_bound"].get<double>(), 100 / (disk / 1e7) / bound, 1e-12);
  EXPECT_TRUE(j["widths"][1]["plan"].is_null());
  EXPECT_EQ(j["widths"][1]["plan_warning"], "the plan cannot describe this model: test");
  const std::string md = read_text_file(out / "report.md");
  EXPECT_NE(md.find("## Plan vs measured"), std::string::npos);
  EXPECT_NE(md.find("decode bound = 10.0 GB/s (given (--bandwidth))"), std::string::npos) << md;
  EXPECT_NE(md.find(fmt::format("| 8-bit | {:.2f} MB | {:.2f} MB | {:.3f} |", (disk - 500) / 1e6, disk / 1e6,
                                disk / (disk - 500))),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| 6-bit | no plan: the plan cannot describe this model: test |"), std::string::npos) << md;

  FakeBench again{{{8, 5}, {6, 5}}};  // no plans now: the reused results keep theirs
  sweep(o, again);
  EXPECT_EQ(again.calls, 0);
  j = nlohmann::ordered_json::parse(read_text_file(out / "results.json"));
  EXPECT_DOUBLE_EQ(j["widths"][0]["plan"]["decode_tps_bound"].get<double>(), bound);
}

TEST(Sweep, ReportsACorruptStoredResult) {
  TempDir out;
  FakeBench bench{{{8, 5}}};
  sweep(options(out.path(), {8}), bench);
  std::ofstream(out / "results/q8-g64.json") << "{ not json";
  try {
    sweep(options(out.path(), {8}), bench);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("q8-g64.json"), std::string::npos) << e.what();
  }
}

// Issue 16: a MoE sweep over shares of experts kept crosses every share with every width; the pruned
// models keep the share of experts (least salient on the suite dropped, the profile kept in OUT), the
// grid's points stand on the chart one series per share, and the lowest-width verdicts read the
// unpruned widths only.
TEST(Sweep, KeepRatiosCrossTheWidthsOnMoe) {
  TempDir tmp;
  SweepOptions o = options(tmp / "sweep", {8, 4});
  o.fused_dir = testing::data_path("tool-calling/moe-fused-strong-f16");
  o.base_dir.clear();
  o.keep_ratios = {0.5};
  FakeBench bench{{{8, 5}, {4, 5}}};
  ThreadPool pool(2);
  const SweepResult r = run_sweep(o, std::ref(bench), pool);
  ASSERT_EQ(r.widths.size(), 4u);
  EXPECT_EQ(r.widths[0].name, "8-bit");
  EXPECT_EQ(r.widths[2].name, "8-bit, 50 % experts");
  EXPECT_EQ(r.widths[3].keep_ratio, 0.5);
  EXPECT_TRUE(fs::exists(tmp / "sweep/experts.json"));
  const auto pruned = nlohmann::json::parse(read_text_file(tmp / "sweep/models/q4-g64-e50/config.json"));
  EXPECT_EQ(pruned["num_local_experts"], 4);
  EXPECT_LT(r.widths[3].result.info.disk_bytes, r.widths[1].result.info.disk_bytes);
  EXPECT_TRUE(fs::exists(tmp / "sweep/results/q8-g64-e50.json"));
  EXPECT_NE(read_text_file(tmp / "sweep/chart.svg").find("accuracy, 50 % experts"), std::string::npos);
  EXPECT_EQ(r.lowest_minimum_viable, 4);
  // Shares are checked, and only a MoE model can be pruned.
  o.keep_ratios = {1.5};
  EXPECT_THROW(run_sweep(o, std::ref(bench), pool), Error);
  SweepOptions dense = options(tmp / "dense", {8});
  dense.keep_ratios = {0.5};
  EXPECT_THROW(run_sweep(dense, std::ref(bench), pool), Error);
}

// Issue 15: mixed plans (--target-bpw) and recipes stand beside the uniform widths; the answer names
// the smallest configuration of any kind; the sensitivity is measured once and a rerun reuses it all.
TEST(Sweep, MixedPlansAndRecipesStandBesideTheWidths) {
  TempDir tmp;
  SweepOptions o = options(tmp / "sweep", {8, 4, 3});
  o.base_dir.clear();
  o.bench.tools = testing::tool_calling::kTools;
  o.bench.max_tokens = 8;
  o.target_bpw = {3.6};
  o.recipes = {"mixed_3_6"};
  FakeBench bench{{{8, 5}, {4, 5}, {3, 2}}, {{"mixed 3.6 bpw", 5}, {"mixed_3_6", 5}}};
  const SweepResult r = sweep(o, bench);
  ASSERT_EQ(r.widths.size(), 5u);
  EXPECT_EQ(r.widths[3].name, "mixed 3.6 bpw");
  EXPECT_EQ(r.widths[3].kind(), "mixed");
  EXPECT_EQ(r.widths[4].kind(), "recipe");
  EXPECT_TRUE(fs::exists(tmp / "sweep/models/mixed-3.6bpw-g64/quantlab_plan.json"));
  const auto plan = nlohmann::json::parse(read_text_file(tmp / "sweep/models/mixed-3.6bpw-g64/quantlab_plan.json"));
  EXPECT_LE(plan["bits_per_weight"].get<double>(), 3.6);
  EXPECT_TRUE(plan["predicted"]["measured_gains"].get<bool>());
  const auto recipe = nlohmann::json::parse(read_text_file(tmp / "sweep/models/recipe-mixed_3_6-g64/config.json"));
  EXPECT_EQ(recipe["quantization"]["model.layers.0.self_attn.v_proj"]["bits"], 3);
  EXPECT_EQ(recipe["quantization"]["model.layers.3.self_attn.v_proj"]["bits"], 6);  // layer >= 7L//8
  // Uniform 4-bit is the lowest viable width; the mixed plan, smaller than it, is the smallest of any kind.
  EXPECT_EQ(r.lowest_minimum_viable, 4);
  ASSERT_TRUE(r.smallest_minimum_viable);
  EXPECT_EQ(r.widths[*r.smallest_minimum_viable].name, "mixed 3.6 bpw");
  EXPECT_LT(r.widths[3].result.info.disk_bytes, r.widths[1].result.info.disk_bytes);
  const auto results = nlohmann::json::parse(read_text_file(tmp / "sweep/results.json"));
  EXPECT_EQ(results["smallest_minimum_viable"]["name"], "mixed 3.6 bpw");
  EXPECT_EQ(results["widths"][3]["kind"], "mixed");
  EXPECT_EQ(results["widths"][3]["target_bpw"], 3.6);
  const std::string chart = read_text_file(tmp / "sweep/chart.svg");
  EXPECT_NE(chart.find("mixed plans (allocated)"), std::string::npos);
  EXPECT_NE(chart.find("mlx-lm recipes"), std::string::npos);
  EXPECT_NE(read_text_file(tmp / "sweep/report.md").find("minimum viable: mixed 3.6 bpw (mixed"), std::string::npos);
  // A rerun measures nothing again and reuses the stored sensitivity.
  const auto stamp = fs::last_write_time(tmp / "sweep/sensitivity.json");
  const int calls = bench.calls;
  const SweepResult again = sweep(o, bench);
  EXPECT_EQ(bench.calls, calls);
  EXPECT_EQ(fs::last_write_time(tmp / "sweep/sensitivity.json"), stamp);
  EXPECT_EQ(again.smallest_minimum_viable, r.smallest_minimum_viable);
}

TEST(Sweep, BadMixedPointsAreRefusedBeforeAnythingIsWritten) {
  TempDir tmp;
  FakeBench bench{{{8, 5}}};
  SweepOptions o = options(tmp / "recipe", {8});
  o.recipes = {"mixed_9_9"};
  EXPECT_THROW(sweep(o, bench), Error);
  EXPECT_FALSE(fs::exists(tmp / "recipe"));
  o = options(tmp / "bpw", {8});
  o.target_bpw = {0};
  EXPECT_THROW(sweep(o, bench), Error);
  EXPECT_FALSE(fs::exists(tmp / "bpw"));
  EXPECT_EQ(bench.calls, 0);
}

// Issue 21: other roundings are points of their own, beside round-to-nearest at the same widths; the
// "lowest width" answers stay about round-to-nearest, the smallest-of-any-kind answer sees them all.
TEST(Sweep, OtherRoundingsArePointsOfTheirOwn) {
  TempDir out;
  FakeBench bench{{{8, 5}, {4, 3}}};
  SweepOptions o = options(out.path(), {8, 4});
  o.methods = {"gptq"};
  o.calibration_tokens = 8;
  const SweepResult r = sweep(o, bench);
  std::vector<std::string> names, kinds;
  for (const auto& w : r.widths) names.push_back(w.name), kinds.push_back(std::string(w.kind()));
  EXPECT_EQ(names, (std::vector<std::string>{"8-bit", "4-bit", "8-bit gptq", "4-bit gptq"}));
  EXPECT_EQ(kinds, (std::vector<std::string>{"uniform", "uniform", "gptq", "gptq"}));
  const fs::path rtn4 = out / "models/q4-g64", gptq4 = out / "models/q4-g64-gptq";
  const auto plan = nlohmann::json::parse(read_text_file((gptq4 / "quantlab_plan.json").string()));
  EXPECT_EQ(plan["quantization_method"], "gptq");
  EXPECT_FALSE(fs::exists(rtn4 / "quantlab_plan.json"));
  EXPECT_NE(read_text_file((rtn4 / "model.safetensors").string()), read_text_file((gptq4 / "model.safetensors").string()))
      << "GPTQ chose the same codes as round-to-nearest everywhere";
  const auto results = nlohmann::json::parse(read_text_file(out / "results.json"));
  EXPECT_EQ(results["widths"][3]["kind"], "gptq");
  EXPECT_EQ(r.lowest_minimum_viable, std::nullopt);  // 4-bit rtn scores 3/5 < 80 %; gptq points do not count here
  // Resumed: nothing quantized or measured again, no calibration needed.
  FakeBench again{{{8, 5}, {4, 3}}};
  sweep(o, again);
  EXPECT_EQ(again.calls, 0);
  SweepOptions delta = options(out / "delta", {8});
  delta.methods = {"delta"};
  delta.base_dir.clear();
  EXPECT_THROW(sweep(delta, bench), Error);  // delta needs the base
}

}  // namespace
}  // namespace quantlab::analysis
