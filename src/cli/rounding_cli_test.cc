// quantize --method rtn|gptq|delta through the real binary (issue 21): the files keep MLX's layout and
// load in the engine like round-to-nearest files, record their method, are the same for any thread
// count, and on the bundled fine-tune GPTQ and delta rounding stay closer to the fused model than
// round-to-nearest on queries the calibration never saw.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <nlohmann/json.hpp>

#include "cli_support.h"
#include "io/safetensors.h"

namespace quantlab::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kFused = shell_quote(tool_calling::kFused);
const std::string kBase = shell_quote(tool_calling::kBase);
const std::string kCalibration = shell_quote(tool_calling::kSeed5);
const std::string kTools = shell_quote(tool_calling::kTools);
const std::string kAdapter = shell_quote(tool_calling::kAdapter);

RunResult quantize(const fs::path& out, const std::string& flags) {
  return run_quantlab("quantize " + kFused + " " + shell_quote(out) + " --quiet " + flags);
}

std::string calibrated(const std::string& method) {
  return "--method " + method + " --calibration " + kCalibration + " --tools " + kTools + " --calibration-tokens 16";
}

// name -> (dtype, shape) of every tensor of a model directory.
std::map<std::string, std::string> layout(const fs::path& dir) {
  std::map<std::string, std::string> out;
  const io::SafetensorsFile f((dir / "model.safetensors").string());
  for (const auto& t : f.tensors()) out[t.name] = std::string(dtype_name(t.dtype)) + t.shape_string();
  return out;
}

TEST(Rounding, GptqFilesHaveMlxsLayoutAndRecordTheirMethod) {
  TempDir tmp;
  ASSERT_EQ(quantize(tmp / "rtn", "--bits 3").exit_code, 0);
  const RunResult r = quantize(tmp / "gptq", "--bits 3 " + calibrated("gptq") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json report = json::parse(r.out);
  EXPECT_GT(report["gptq_tensors"].get<int>(), 0);
  // q/k/v and gate/up read the same input: one factorisation each (4 per layer instead of 7).
  EXPECT_EQ(report["gptq_factorisations"].get<int>() * 7, report["gptq_tensors"].get<int>() * 4) << r.out;
  EXPECT_EQ(layout(tmp / "gptq"), layout(tmp / "rtn"));
  EXPECT_EQ(json::parse(slurp(tmp / "gptq/config.json")), json::parse(slurp(tmp / "rtn/config.json")));
  const io::SafetensorsFile f(tmp / "gptq/model.safetensors");
  EXPECT_EQ(f.metadata().at("format"), "mlx");
  EXPECT_EQ(f.metadata().at("quantization_method"), "gptq");
  EXPECT_EQ(json::parse(slurp(tmp / "gptq/quantlab_plan.json"))["quantization_method"], "gptq");
  // Round-to-nearest files say nothing of a method: byte for byte what mlx-lm writes.
  const io::SafetensorsFile rtn(tmp / "rtn/model.safetensors");
  EXPECT_EQ(rtn.metadata().count("quantization_method"), 0u);
  EXPECT_NE(slurp(tmp / "gptq/model.safetensors"), slurp(tmp / "rtn/model.safetensors"));
}

// The largest gap between the logits of quantized model `dir` and of its dequantized float32 copy.
float gap_to_dequantized(const fs::path& dir) {
  RunResult r = run_quantlab("dequantize " + shell_quote(dir) + " " + shell_quote(dir.string() + "-f") +
                             " --dtype float32");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const std::string& model : {dir.string(), dir.string() + "-f"}) {
    r = run_quantlab("logits " + shell_quote(model) + " --ids 1,2,3,4,5,6,7,8 --out " + shell_quote(model + ".logits"));
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  const io::SafetensorsFile q(dir.string() + ".logits"), f(dir.string() + "-f.logits");
  const auto a = q.bytes(q.at("logits")), b = f.bytes(f.at("logits"));
  EXPECT_EQ(a.size(), b.size());
  const auto* x = reinterpret_cast<const float*>(a.data());
  const auto* y = reinterpret_cast<const float*>(b.data());
  float worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()) / 4; ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  return worst;
}

TEST(Rounding, GptqRunsInTheEngineAsItsDequantizedFloatModel) {
  TempDir tmp;
  ASSERT_EQ(quantize(tmp / "q", "--bits 4 " + calibrated("gptq")).exit_code, 0);
  EXPECT_LT(gap_to_dequantized(tmp / "q"), 2e-3f) << "quantized and dequantized-float logits differ";
}

TEST(Rounding, TheSameFilesForAnyThreadCount) {
  TempDir tmp;
  for (const char* threads : {"1", "2", "4"})
    ASSERT_EQ(quantize(tmp / threads, "--bits 3 --threads " + std::string(threads) + " " + calibrated("delta") +
                                          " --base " + kBase).exit_code, 0);
  EXPECT_TRUE(slurp(tmp / "1/model.safetensors") == slurp(tmp / "2/model.safetensors"));
  EXPECT_TRUE(slurp(tmp / "1/model.safetensors") == slurp(tmp / "4/model.safetensors"));
}

TEST(Rounding, StatisticsFromCalibrateGiveTheSameFilesAsCalibratingInline) {
  TempDir tmp;
  RunResult r = run_quantlab("calibrate " + kFused + " --suite " + kCalibration + " --tools " + kTools +
                             " --max-tokens 16 --second-moments --quiet --out " + shell_quote(tmp / "stats.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(quantize(tmp / "a", "--bits 3 " + calibrated("gptq")).exit_code, 0);
  r = quantize(tmp / "b", "--bits 3 --method gptq --stats " + shell_quote(tmp / "stats.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(slurp(tmp / "a/model.safetensors") == slurp(tmp / "b/model.safetensors"));
}

// Bytes that differ between two files of the same length.
size_t differing_bytes(const std::string& a, const std::string& b) {
  EXPECT_EQ(a.size(), b.size());
  size_t n = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) n += a[i] != b[i];
  return n;
}

// The tensor data of a model's safetensors file, without its header (whose metadata names the method).
std::string tensor_bytes(const fs::path& dir) {
  const std::string file = slurp(dir / "model.safetensors");
  uint64_t header = 0;
  std::memcpy(&header, file.data(), sizeof header);
  return file.substr(8 + header);
}

// A MoE whose experts' calibration kept the routed inputs (what `calibrate` does on its own for models
// like Qwen3-30B-A3B, where E[x xᵀ] per expert does not fit): ~11 tokens per expert against 256 gate/up
// columns, so gate/up are rounded in low-rank form and down (128 columns) densely from the inputs. The
// files are nearly those of the full matrices (the inputs are stored in bfloat16), far from
// round-to-nearest's, run in the engine as their dequantized model, and gate/up share each expert's factor.
TEST(Rounding, MoeExpertsFromRoutedInputsRoundAsFromTheirMoments) {
  TempDir tmp;
  const std::string moe = shell_quote(data_path("tool-calling/moe-fused-strong-f16"));
  std::ofstream(tmp / "text.txt") << "The weather in Paris is mild today, and the museum opens at nine in the "
                                     "morning. Please book a table for two.\n";
  std::map<std::string, json> reports;
  for (const std::string mode : {"inputs", "moments"}) {
    const fs::path stats = tmp / (mode + ".safetensors");
    RunResult r = run_quantlab("calibrate " + moe + " --text " + shell_quote(tmp / "text.txt") +
                               " --second-moments --expert-statistics " + mode + " --quiet --out " + shell_quote(stats));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_quantlab("quantize " + moe + " " + shell_quote(tmp / mode) + " --bits 4 --method gptq --quiet --json --stats " +
                     shell_quote(stats));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    reports[mode] = json::parse(r.out);
  }
  const io::SafetensorsFile stats(tmp / "inputs.safetensors");
  EXPECT_EQ(stats.at("model.layers.0.mlp.switch_mlp.gate_proj.inputs").dtype, DType::kBF16);
  EXPECT_EQ(stats.find("model.layers.0.mlp.switch_mlp.gate_proj.xxt"), nullptr);
  ASSERT_EQ(run_quantlab("quantize " + moe + " " + shell_quote(tmp / "rtn") + " --bits 4 --quiet").exit_code, 0);
  const std::string inputs = tensor_bytes(tmp / "inputs"), moments = tensor_bytes(tmp / "moments");
  const size_t differ = differing_bytes(inputs, moments);
  const size_t from_rtn = differing_bytes(inputs, tensor_bytes(tmp / "rtn"));
  EXPECT_LT(differ, inputs.size() / 50) << differ;
  EXPECT_GT(from_rtn, 5 * differ) << from_rtn;
  // Per layer q/k/v, o, the router, and per expert one factor for gate and up together and one for
  // down; plus lm_head.
  EXPECT_EQ(reports["inputs"]["gptq_factorisations"].get<int>(), 4 * (3 + 8 + 8) + 1);
  EXPECT_LT(gap_to_dequantized(tmp / "inputs"), 2e-3f);
}

// The fine-tune's change read from its adapter (exact scale·B·A) instead of as fused − base (the fused
// weights rounded to float16): nearly the same weighting, so nearly the same files — far closer to
// delta-from-the-base than plain GPTQ is (a third of the bytes differ between those).
TEST(Rounding, DeltaFromTheAdapterAloneIsDeltaFromTheBase) {
  TempDir tmp;
  const std::string calibration = " --calibration " + kCalibration + " --tools " + kTools + " --calibration-tokens 16";
  ASSERT_EQ(quantize(tmp / "base", "--bits 3 --method delta --base " + kBase + calibration).exit_code, 0);
  const RunResult r = quantize(tmp / "adapter", "--bits 3 --method delta --adapter " + kAdapter + calibration);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(quantize(tmp / "gptq", "--bits 3 --method gptq" + calibration).exit_code, 0);
  const std::string from_base = slurp(tmp / "base/model.safetensors");
  EXPECT_LT(differing_bytes(from_base, slurp(tmp / "adapter/model.safetensors")), from_base.size() / 100);
  EXPECT_GT(differing_bytes(from_base, slurp(tmp / "gptq/model.safetensors")), from_base.size() / 10);
  const json plan = json::parse(slurp(tmp / "adapter/quantlab_plan.json"));
  EXPECT_EQ(plan["rounding"]["adapter"], tool_calling::kAdapter);
  EXPECT_FALSE(plan["rounding"].contains("base"));
  // An adapter of another model is refused before anything is written.
  const RunResult other = run_quantlab("quantize " + shell_quote(data_path("tool-calling/moe-fused-strong-f16")) + " " +
                                       shell_quote(tmp / "q") + " --bits 3 --method delta --adapter " + kAdapter +
                                       calibration);
  EXPECT_EQ(other.exit_code, kInvalid) << other.err;
  EXPECT_NE(other.err.find("adapter module"), std::string::npos) << other.err;
  EXPECT_FALSE(fs::exists(tmp / "q"));
}

TEST(Rounding, BadCombinationsAreUsageErrors) {
  TempDir tmp;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--method gptq", "needs the inputs' statistics"},
      {"--method delta --calibration " + kCalibration, "needs the fine-tune's change"},
      {"--method delta --calibration " + kCalibration + " --base " + kBase + " --adapter " + kAdapter, "one of them"},
      {"--method gptq --calibration " + kCalibration + " --base " + kBase, "go with --method delta"},
      {"--method rtn --stats " + kCalibration, "go with --method gptq|delta"},
      {"--method nearest", "--method"},
      {"--method delta --calibration " + kCalibration + " --target-bpw 3.5", "needs --base"},
      {"--method rtn,gptq --bits 3 --calibration " + kCalibration, "a list of methods goes with a budget"},
      {"--method gptq --stats " + kCalibration + " --calibration " + kCalibration + " --target-bpw 3",
       "--stats does not combine with it"},
      {"--method gptq,nearest --target-bpw 3 --calibration " + kCalibration, "--method"},
      {"--recipe mixed_3_6 --calibration " + kCalibration, "--calibration, --stats, --act-order and --sequential go with"},
      {"--bits 3 --sequential", "--sequential go with --method gptq|delta"},
      {"--method gptq --sequential --stats " + kCalibration, "--sequential records its statistics on --calibration"},
      {"--method rtn --target-bpw 3 --sequential --calibration " + kCalibration, "--sequential goes with --method"},
      {"--method gptq --calibration " + kCalibration + " --vocab-prior 1.5", "--vocab-prior"},
  };
  for (const auto& [flags, message] : cases) {
    SCOPED_TRACE(flags);
    const RunResult r = quantize(tmp / "q", flags);
    EXPECT_EQ(r.exit_code, kUsage) << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(tmp / "q"));
  }
  // Statistics without second moments: an input error naming the file.
  RunResult r = run_quantlab("calibrate " + kFused + " --suite " + kCalibration + " --max-tokens 4 --quiet --out " +
                             shell_quote(tmp / "diag.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = quantize(tmp / "q", "--method gptq --stats " + shell_quote(tmp / "diag.safetensors"));
  EXPECT_EQ(r.exit_code, kInvalid) << r.err;
  EXPECT_NE(r.err.find("diag.safetensors: no second moments"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "q"));
}

// The protocol: calibrate on the first half of dev40, score on the second half, which the
// calibration never saw. KL(fused ‖ quantized) teacher-forced on the fused model's replies: lower is
// closer to the fine-tuned model. (docs/rounding.md has the full table, 2-4 bits.)
struct Halves {
  fs::path calibration, held_out;
};

Halves split_dev40(const fs::path& dir) {
  std::istringstream lines(slurp(tool_calling::kDev40));
  std::ofstream a(dir / "a.jsonl"), b(dir / "b.jsonl");
  int n = 0;
  for (std::string line; std::getline(lines, line); ++n) (n < 20 ? a : b) << line << "\n";
  return {dir / "a.jsonl", dir / "b.jsonl"};
}

// The model's row of `divergence --json` on the suite, against the fused model (and its base).
json divergence(const fs::path& model, const fs::path& suite, const std::string& fused = kFused,
                const std::string& base = kBase) {
  const RunResult r = run_quantlab("divergence " + fused + " --base " + base + " --suite " + shell_quote(suite) +
                                   " --tools " + kTools + " --max-tokens 16 --json --model " + shell_quote(model));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out)["models"][0];
}

double kl_reply(const fs::path& model, const fs::path& suite) { return divergence(model, suite)["kl_reply"].get<double>(); }

TEST(Rounding, GptqAndDeltaStayCloserToTheFineTuneThanRoundToNearestOnUnseenQueries) {
  TempDir tmp;
  const Halves halves = split_dev40(tmp.path());
  const std::string on_a = " --calibration " + shell_quote(halves.calibration) + " --tools " + kTools +
                           " --calibration-tokens 32";
  ASSERT_EQ(quantize(tmp / "rtn", "--bits 3").exit_code, 0);
  ASSERT_EQ(quantize(tmp / "gptq", "--bits 3 --method gptq" + on_a).exit_code, 0);
  ASSERT_EQ(quantize(tmp / "delta", "--bits 3 --method delta --base " + kBase + on_a).exit_code, 0);
  const double rtn = kl_reply(tmp / "rtn", halves.held_out);
  const double gptq = kl_reply(tmp / "gptq", halves.held_out);
  const double delta = kl_reply(tmp / "delta", halves.held_out);
  // Measured 2026-12-06: rtn 0.0088, gptq 0.0009, delta 0.0017 — demand a clear margin, not the noise.
  EXPECT_LT(gptq, 0.5 * rtn) << "gptq " << gptq << " rtn " << rtn;
  EXPECT_LT(delta, 0.5 * rtn) << "delta " << delta << " rtn " << rtn;
}

// Sequential statistics (analysis/sequential_calibration.h): each module's inputs recorded with the modules
// before it rounded. On the MoE fine-tune, whose experts' GPTQ on the float model's statistics ends behind
// round-to-nearest on unseen queries at 3 bits, they bring GPTQ ahead of both, and the model's own plan
// says which statistics it was rounded on.
TEST(Rounding, SequentialStatisticsBringTheMoeAheadOfRoundToNearest) {
  TempDir tmp;
  const Halves halves = split_dev40(tmp.path());
  const std::string moe = shell_quote(data_path("tool-calling/moe-fused-strong-f16"));
  const std::string moe_base = shell_quote(data_path("tool-calling/moe-base-f16"));
  const std::string on_a = " --calibration " + shell_quote(halves.calibration) + " --tools " + kTools +
                           " --calibration-tokens 32";
  const auto quantize_moe = [&](const fs::path& out, const std::string& flags) {
    const RunResult r = run_quantlab("quantize " + moe + " " + shell_quote(out) + " --quiet --bits 3" + flags);
    EXPECT_EQ(r.exit_code, 0) << r.err;
  };
  quantize_moe(tmp / "rtn", "");
  quantize_moe(tmp / "gptq", " --method gptq" + on_a);
  quantize_moe(tmp / "seq", " --method gptq --sequential" + on_a);
  EXPECT_EQ(json::parse(slurp(tmp / "seq/quantlab_plan.json"))["rounding"]["sequential"], true);
  EXPECT_EQ(json::parse(slurp(tmp / "gptq/quantlab_plan.json"))["rounding"]["sequential"], false);
  const auto kl = [&](const char* name) {
    return divergence(tmp / name, halves.held_out, moe, moe_base)["kl_reply"].get<double>();
  };
  const double rtn = kl("rtn"), gptq = kl("gptq"), seq = kl("seq");
  // Measured 2026-12-07 (reply KL on the held-out half): rtn 0.0258, gptq 0.0323, gptq sequential 0.0171.
  EXPECT_LT(seq, 0.8 * rtn) << "sequential " << seq << " rtn " << rtn;
  EXPECT_LT(seq, 0.8 * gptq) << "sequential " << seq << " gptq " << gptq;
}

// With a budget the method is an axis of the allocation: every width measured with each method's own
// rounding under E[x xᵀ], a (width, method) chosen per module, each module's method named in the plan
// and the calibrated one in the file; at the same budget that stays closer to the fine-tuned model on
// queries the calibration never saw than round-to-nearest's allocation. The MoE fine-tune, where
// scripts/budget-methods-table.sh shows the gain at every budget (on the dense strong one the first
// token's KL falls but the reply's does not at 2.75 and 3 bits: docs/rounding.md). With the measured
// gains (the default): without them the modules' errors are in different currencies.
TEST(Rounding, ABudgetChoosesAWidthAndAMethodPerModule) {
  TempDir tmp;
  const Halves halves = split_dev40(tmp.path());
  const std::string moe = shell_quote(data_path("tool-calling/moe-fused-strong-f16"));
  const std::string moe_base = shell_quote(data_path("tool-calling/moe-base-f16"));
  const auto quantize_moe = [&](const fs::path& out, const std::string& flags) {
    return run_quantlab("quantize " + moe + " " + shell_quote(out) + " --quiet --target-bpw 3 --calibration " +
                        shell_quote(halves.calibration) + " --tools " + kTools + " --calibration-tokens 16 --json" + flags);
  };
  const RunResult rtn = quantize_moe(tmp / "rtn", "");
  ASSERT_EQ(rtn.exit_code, 0) << rtn.err;
  const RunResult both = quantize_moe(tmp / "both", " --method rtn,gptq");
  ASSERT_EQ(both.exit_code, 0) << both.err;
  EXPECT_EQ(json::parse(both.out)["method"], "rtn,gptq");
  EXPECT_LE(json::parse(both.out)["bits_per_weight"].get<double>(), 3.0);
  const json plan = json::parse(slurp(tmp / "both/quantlab_plan.json"));
  EXPECT_EQ(plan["predicted"]["error_metric"], "second_moments");
  EXPECT_EQ(plan["predicted"]["held_out_errors"], true);  // rounded on half the suite, measured on the other
  EXPECT_EQ(plan["quantization_method"], "gptq");
  size_t gptq_modules = 0;
  for (const auto& [module, entry] : plan["modules"].items()) gptq_modules += entry.is_object() && entry.value("method", "") == "gptq";
  EXPECT_GT(gptq_modules, 20u) << plan.dump();
  EXPECT_EQ(io::SafetensorsFile(tmp / "both/model.safetensors").metadata().at("quantization_method"), "gptq");
  for (const auto& [module, entry] : json::parse(slurp(tmp / "rtn/quantlab_plan.json"))["modules"].items())
    EXPECT_FALSE(entry.is_object() && entry.contains("method")) << module;
  // KL over the fused model's 16-token replies on the held-out half, measured 2026-12-07: rtn 0.032,
  // rtn+gptq 0.015 here (0.011 with the table's 32-token calibration). The first token's KL (one position
  // per query) is not asserted: it moved both ways between calibrations (here 0.028 against rtn's 0.023,
  // 0.006 against 0.023 in the table).
  const json d_rtn = divergence(tmp / "rtn", halves.held_out, moe, moe_base);
  const json d_both = divergence(tmp / "both", halves.held_out, moe, moe_base);
  EXPECT_LT(d_both["kl_reply"].get<double>(), 0.6 * d_rtn["kl_reply"].get<double>()) << d_both << d_rtn;
  EXPECT_GE(d_both["correct"].get<int>(), d_rtn["correct"].get<int>());
  // The same allocation rounded on sequential statistics for its plan: the same widths and methods.
  const RunResult sequential = quantize_moe(tmp / "sequential", " --method rtn,gptq --sequential");
  ASSERT_EQ(sequential.exit_code, 0) << sequential.err;
  const json seq_plan = json::parse(slurp(tmp / "sequential/quantlab_plan.json"));
  EXPECT_EQ(seq_plan["rounding"]["sequential"], true);
  EXPECT_EQ(seq_plan["modules"], plan["modules"]);
  const json d_seq = divergence(tmp / "sequential", halves.held_out, moe, moe_base);
  EXPECT_LT(d_seq["kl_reply"].get<double>(), 0.6 * d_rtn["kl_reply"].get<double>()) << d_seq << d_rtn;
}

std::string tensor_data(const fs::path& dir, const std::string& name) {
  const io::SafetensorsFile f(dir / "model.safetensors");
  const auto bytes = f.bytes(f.at(name));
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// --vocab-prior W mixes the vocabulary's inputs into layer 0's q/k/v statistics only: those three are
// rounded differently, every other tensor is the default file's byte for byte, and the model's plan
// records the weight (0, GPTQ as published, by default).
TEST(Rounding, TheVocabularyPriorChangesOnlyLayerZerosAttentionInputs) {
  TempDir tmp;
  const std::string stats = shell_quote(tmp / "stats.safetensors");
  ASSERT_EQ(run_quantlab("calibrate " + kFused + " --suite " + kCalibration + " --tools " + kTools +
                         " --max-tokens 8 --second-moments --quiet --out " + stats).exit_code, 0);
  ASSERT_EQ(quantize(tmp / "plain", "--bits 3 --method gptq --stats " + stats).exit_code, 0);
  const RunResult r = quantize(tmp / "prior", "--bits 3 --method gptq --stats " + stats + " --vocab-prior 0.2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const io::SafetensorsFile f(tmp / "plain/model.safetensors");
  size_t changed = 0;
  for (const auto& t : f.tensors()) {
    const bool layer0_qkv = t.name.starts_with("model.layers.0.self_attn.") &&
                            (t.name.find("q_proj") != std::string::npos || t.name.find("k_proj") != std::string::npos ||
                             t.name.find("v_proj") != std::string::npos);
    const bool same = tensor_data(tmp / "plain", t.name) == tensor_data(tmp / "prior", t.name);
    if (!layer0_qkv) {
      EXPECT_TRUE(same) << t.name;
    }
    changed += !same;
  }
  EXPECT_GE(changed, 3u);  // each of q/k/v's codes at least
  EXPECT_EQ(json::parse(slurp(tmp / "plain/quantlab_plan.json"))["rounding"]["vocab_prior"], 0.0);
  EXPECT_EQ(json::parse(slurp(tmp / "prior/quantlab_plan.json"))["rounding"]["vocab_prior"], 0.2);
}

// A plan file can give a module its own method: that module is rounded as `--method` rounds every
// module, the others to nearest, and the model's own plan says which.
TEST(Rounding, APlanGivesModulesTheirOwnMethod) {
  TempDir tmp;
  const std::string stats = shell_quote(tmp / "stats.safetensors");
  ASSERT_EQ(run_quantlab("calibrate " + kFused + " --suite " + kCalibration + " --tools " + kTools +
                         " --max-tokens 8 --second-moments --quiet --out " + stats).exit_code, 0);
  ASSERT_EQ(quantize(tmp / "rtn", "--bits 3").exit_code, 0);
  ASSERT_EQ(quantize(tmp / "gptq", "--bits 3 --method gptq --stats " + stats).exit_code, 0);
  const std::string q0 = "model.layers.0.self_attn.q_proj", k0 = "model.layers.0.self_attn.k_proj";
  const std::string embedding = "model.embed_tokens";
  const auto write_plan = [&](const std::string& method) {
    std::ofstream(tmp / "plan.json") << json{{"format", "quantlab.plan/1"}, {"bits", 3}, {"group_size", 64},
                                             {"modules", {{q0, {{"bits", 3}, {"group_size", 64}, {"method", method}}},
                                                          {embedding, {{"bits", 3}, {"group_size", 64}, {"method", method}}}}}}
                                            .dump();
  };
  write_plan("gptq");
  const std::string plan = " --plan " + shell_quote(tmp / "plan.json");
  RunResult r = quantize(tmp / "mixed", plan + " --stats " + stats + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["gptq_tensors"], 1);
  for (const std::string part : {".weight", ".scales", ".biases"}) {
    EXPECT_TRUE(tensor_data(tmp / "mixed", q0 + part) == tensor_data(tmp / "gptq", q0 + part)) << part;
    EXPECT_TRUE(tensor_data(tmp / "mixed", k0 + part) == tensor_data(tmp / "rtn", k0 + part)) << part;
  }
  EXPECT_FALSE(tensor_data(tmp / "gptq", q0 + ".weight") == tensor_data(tmp / "rtn", q0 + ".weight"));
  // An embedding table is looked up, not multiplied by an input: rounded to nearest, said, and recorded so.
  EXPECT_NE(r.err.find("note: " + embedding + " is rounded to nearest, not with its plan's gptq"), std::string::npos)
      << r.err;
  const json recorded = json::parse(slurp(tmp / "mixed/quantlab_plan.json"));
  EXPECT_EQ(recorded["modules"][q0]["method"], "gptq");
  EXPECT_EQ(recorded["modules"][embedding]["method"], "rtn");
  EXPECT_FALSE(recorded["modules"][k0].contains("method"));
  EXPECT_EQ(recorded["quantization_method"], "gptq");
  // Statistics recorded inline (--calibration) serve a plan as --stats does.
  r = quantize(tmp / "inline", plan + " --calibration " + kCalibration + " --tools " + kTools +
                                   " --calibration-tokens 8 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["gptq_tensors"], 1);
  EXPECT_TRUE(tensor_data(tmp / "inline", q0 + ".weight") == tensor_data(tmp / "mixed", q0 + ".weight"));
  // Without the statistics the module's method cannot be honoured; an unknown method names the module.
  r = quantize(tmp / "q", plan);
  EXPECT_EQ(r.exit_code, kUsage) << r.err;
  EXPECT_NE(r.err.find("plan.json (its modules' \"method\": \"gptq\") needs the inputs' statistics"), std::string::npos)
      << r.err;
  write_plan("nearest");
  r = quantize(tmp / "q", plan + " --stats " + stats);
  EXPECT_EQ(r.exit_code, kInvalid) << r.err;
  EXPECT_NE(r.err.find("modules['" + embedding + "']: 'method' must be"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "q"));
}

}  // namespace
}  // namespace quantlab::testing
