// `quantlab bench` through the real binary: bad inputs (named by file and line, nothing written), a
// model that fails while the others are measured, and the experiment itself on the bundled fused
// tool-calling model quantized to 8 and 6 bits.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_support.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"

namespace quantlab::testing {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::json;
using namespace tool_calling;

void write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// The fused model quantized once for all tests of this file.
class BenchCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    models_ = new TempDir;
    for (const char* bits : {"8", "6", "4"}) {
      const auto r =
          run_quantlab("quantize " + shell_quote(kFused) + " " + shell_quote(q(bits)) + " --bits " + bits + " --quiet");
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
  }
  static void TearDownTestSuite() {
    delete models_;
    models_ = nullptr;
  }
  static std::string q(const std::string& bits) { return *models_ / ("q" + bits); }

  RunResult bench(const std::string& args) { return run_quantlab("bench " + args); }
  void expect_input_error(const RunResult& r, int code, const std::string& needle) {
    EXPECT_EQ(r.exit_code, code) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "missing '" << needle << "' in: " << r.err;
    EXPECT_FALSE(fs::exists(tmp_ / "RESULTS.json")) << "output written despite the error";
  }
  std::string out_flags() { return " --out " + shell_quote(tmp_ / "RESULTS.json"); }

  static TempDir* models_;
  TempDir tmp_;
};
TempDir* BenchCli::models_ = nullptr;

TEST_F(BenchCli, MalformedSuiteLineIsNamedByNumber) {
  const std::string suite = tmp_ / "suite.jsonl";
  write(suite,
        "{\"id\": \"a\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"expected\": \"direct\"}\n"
        "{\"id\": \"b\", \"messages\": [\n");
  expect_input_error(bench("--model " + shell_quote(q("8")) + " --suite " + shell_quote(suite) + " --tools " +
                           shell_quote(kTools) + out_flags()),
                     kInvalid, "suite.jsonl:2: not valid JSON");
}

TEST_F(BenchCli, UnknownToolNameInTheSuite) {
  const std::string suite = tmp_ / "suite.jsonl";
  write(suite,
        "{\"id\": \"a\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"expected\": \"direct\"}\n"
        "\n"
        "{\"id\": \"b\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"expected\": \"tool\", "
        "\"tool\": \"get_horoscope\"}\n");
  expect_input_error(bench("--model " + shell_quote(q("8")) + " --suite " + shell_quote(suite) + " --tools " +
                           shell_quote(kTools) + out_flags()),
                     kInvalid, "suite.jsonl:3: 'b': unknown tool 'get_horoscope'");
}

TEST_F(BenchCli, CriteriaFileErrorsNameTheLine) {
  const std::string criteria = tmp_ / "rules.toml";
  write(criteria, "[optimal]\naccuracy_min_pct = 100\ndisk_smaler_pct = 30\n");
  expect_input_error(bench("--model " + shell_quote(q("8")) + " --suite " + shell_quote(kSeed5) + " --criteria " +
                           shell_quote(criteria) + out_flags()),
                     kInvalid, "rules.toml:3: unknown key 'disk_smaler_pct'");
  write(criteria, "[optimal]\nspeed_ratio = \"fast\"\n");
  expect_input_error(bench("--model " + shell_quote(q("8")) + " --suite " + shell_quote(kSeed5) + " --criteria " +
                           shell_quote(criteria) + out_flags()),
                     kInvalid, "rules.toml:2:");
}

TEST_F(BenchCli, UsageErrors) {
  expect_input_error(bench("--model a=" + shell_quote(q("8")) + " --model a=" + shell_quote(q("6")) + " --suite " +
                           shell_quote(kSeed5) + out_flags()),
                     kUsage, "the name 'a' is used twice");
  expect_input_error(
      bench("--model a=" + shell_quote(q("8")) + " --baseline b --suite " + shell_quote(kSeed5) + out_flags()), kUsage,
      "--baseline 'b' is not one of the --model names");
  expect_input_error(bench("--model =" + shell_quote(q("8")) + " --suite " + shell_quote(kSeed5) + out_flags()), kUsage,
                     "expected NAME=DIR");
  expect_input_error(bench("--model a=" + shell_quote(q("8")) + " --model-compute b=int8 --suite " +
                           shell_quote(kSeed5) + out_flags()),
                     kUsage, "--model-compute b=int8: expected NAME=exact|int8|bf16 with NAME one of the --model names");
  expect_input_error(bench("--model a=" + shell_quote(q("8")) + " --model-compute a=fp8 --suite " +
                           shell_quote(kSeed5) + out_flags()),
                     kUsage, "'fp8' is not a compute path (exact, int8 or bf16)");
  expect_input_error(bench("--model a=" + shell_quote(q("8")) + " --compute fp8 --suite " + shell_quote(kSeed5) +
                           out_flags()),
                     kUsage, "--compute");
}

// The same files under two names, one run with --compute int8: RESULTS.json says which path each ran,
// and the int8 path decides seed5 as the exact one does (docs/compute-paths.md).
TEST_F(BenchCli, ModelComputeRunsOneNameOnTheInt8Path) {
  const auto r = bench("--model exact=" + shell_quote(q("8")) + " --model int8=" + shell_quote(q("8")) +
                       " --model-compute int8=int8 --suite " + shell_quote(kSeed5) + " --max-tokens 16 --no-cold" +
                       out_flags());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const ojson j = ojson::parse(slurp(tmp_ / "RESULTS.json"));
  ASSERT_EQ(j["models"].size(), 2u);
  EXPECT_EQ(j["models"][0]["compute"], "exact");
  EXPECT_EQ(j["models"][1]["compute"], "int8");
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(j["models"][0]["queries"][i]["decision"], j["models"][1]["queries"][i]["decision"]) << "query " << i;
  }
}

TEST_F(BenchCli, AModelThatFailsIsReportedAndTheOthersMeasured) {
  const std::string broken = tmp_ / "broken";
  fs::create_directories(broken);
  write(broken + "/config.json", "{\"model_type\": \"qwen3\", ");
  const auto r = bench("--model q8=" + shell_quote(q("8")) + " --model broken=" + shell_quote(broken) +
                       " --model q6=" + shell_quote(q("6")) + " --suite " + shell_quote(kSeed5) +
                       " --max-tokens 8 --no-cold" + out_flags());
  EXPECT_EQ(r.exit_code, kInvalid) << r.err;
  EXPECT_NE(r.err.find("broken (" + broken + "): "), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("broken         FAILED: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("q6 vs q8: "), std::string::npos) << r.out;
  const ojson j = ojson::parse(slurp(tmp_ / "RESULTS.json"));
  ASSERT_EQ(j["models"].size(), 3u);
  EXPECT_EQ(j["models"][0]["status"], "ok");
  EXPECT_EQ(j["models"][1]["status"], "failed");
  EXPECT_NE(j["models"][1]["error"].get<std::string>().find("config.json"), std::string::npos);
  EXPECT_EQ(j["models"][2]["status"], "ok");
  EXPECT_EQ(j["models"][2]["accuracy"]["overall"]["total"], 5);
  ASSERT_EQ(j["comparisons"].size(), 1u);
  EXPECT_EQ(j["comparisons"][0]["candidate"], "q6");
}

// Every field the issue asks for, for every model: load (warm, cold attempt), disk, bits per weight,
// memory, speed over runs, accuracy with interval, and per query the decision, margin and reply.
TEST_F(BenchCli, Seed5ResultsHoldEveryField) {
  const std::string report = tmp_ / "REPORT.md";
  const auto r = bench("--model q8=" + shell_quote(q("8")) + " --model q6=" + shell_quote(q("6")) + " --suite " +
                       shell_quote(kSeed5) + " --max-tokens 24 --runs 2 --threads 2 --report " + shell_quote(report) +
                       out_flags());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const ojson j = ojson::parse(slurp(tmp_ / "RESULTS.json"));
  EXPECT_EQ(j["schema"], "quantlab.bench/3");
  // No --bandwidth: the run measured it, and every plan's bound divides by that figure.
  EXPECT_GT(j["machine"]["bandwidth_gb_per_s"].get<double>(), 0);
  EXPECT_EQ(j["machine"]["bandwidth_source"].get<std::string>().rfind("measured, 256 MiB, 2 threads", 0), 0u)
      << j["machine"].dump();
  for (const ojson& m : j["models"]) {
    SCOPED_TRACE(m["name"].get<std::string>());
    EXPECT_GT(m["load"]["seconds"].get<double>(), 0);
    EXPECT_TRUE(m["load"]["cold"]["attempted"].get<bool>());
    if (m["load"]["cold"]["achieved"].get<bool>())
      EXPECT_GT(m["load"]["cold"]["seconds"].get<double>(), 0);
    else
      EXPECT_NE(m["load"]["cold"]["note"], "");
    EXPECT_GT(m["model"]["disk_bytes"].get<double>(), 0);
    EXPECT_GT(m["model"]["bits_per_weight"].get<double>(), 0);
    EXPECT_GT(m["memory"]["peak_rss_bytes"].get<double>(), m["memory"]["weights_mapped_bytes"].get<double>());
    EXPECT_GT(m["memory"]["kv_cache_bytes"].get<double>(), 0);
    EXPECT_EQ(m["speed"]["runs"].size(), 2u);
    EXPECT_GT(m["speed"]["decode_tokens_per_second"]["median"].get<double>(), 0);
    EXPECT_GT(m["speed"]["prefill_tokens_per_second"]["median"].get<double>(), 0);
    EXPECT_TRUE(m["speed"]["replies_identical_across_runs"].get<bool>());
    EXPECT_EQ(m["accuracy"]["overall"]["total"], 5);
    EXPECT_EQ(m["queries"].size(), 5u);
    ASSERT_TRUE(m["plan"].is_object()) << m["plan_warning"];
    EXPECT_EQ(m["plan"]["bandwidth_gb_per_s"], j["machine"]["bandwidth_gb_per_s"]);
    EXPECT_EQ(m["plan"]["threads"], 2);
    for (const ojson& q : m["queries"]) {
      EXPECT_TRUE(q["first_token_margin"].is_number());
      // The margin's sign is the greedy decision: positive exactly when the reply starts with <tool_call>.
      EXPECT_EQ(q["first_token_margin"].get<double>() > 0, q["decision"] == "tool") << q.dump();
      EXPECT_LE(q["generated_tokens"].get<int>(), 24);
      EXPECT_TRUE(q["reply"].is_string());
    }
  }
  EXPECT_EQ(j["models"][0]["model"]["bits"], 8);
  EXPECT_EQ(j["models"][1]["model"]["bits"], 6);
  ASSERT_EQ(j["comparisons"].size(), 1u);
  const ojson& c = j["comparisons"][0];
  EXPECT_GT(c["disk_smaller_pct"].get<double>(), 15);  // 6.5 vs 8.5 bits per weight, plus float norms
  EXPECT_EQ(c["checks"].size(), 8u);
  bool warned = false;
  for (const ojson& w : c["warnings"])
    warned |= w.get<std::string>().find("5 queries cannot show") != std::string::npos;
  EXPECT_TRUE(warned) << c.dump(2);
  const std::string md = slurp(report);
  EXPECT_NE(md.find("### q6 vs q8: **"), std::string::npos);
  EXPECT_NE(md.find("| seed5-4 | direct |"), std::string::npos);
  // Issue 22: both widths score the same and the baseline fails the accuracy rule itself, so the
  // verdict names the suite, with the queries suite-size computes, and claims no lost accuracy.
  const double base_acc = j["models"][0]["accuracy"]["overall"]["pct"].get<double>();
  ASSERT_EQ(j["models"][0]["accuracy"]["overall"]["correct"], j["models"][1]["accuracy"]["overall"]["correct"]);
  ASSERT_LT(base_acc, 80);
  EXPECT_EQ(c["problems"][0], "suite") << c.dump(2);
  const std::string advice = c["advice"];
  EXPECT_EQ(advice.find("loses accuracy"), std::string::npos) << advice;
  EXPECT_NE(advice.find(fmt::format("the baseline q8 itself scores {:.1f} % (< 80 %)", base_acc)), std::string::npos)
      << advice;
  const auto size = run_quantlab(fmt::format("suite-size --baseline-acc {} --drop 20 --json", base_acc));
  ASSERT_EQ(size.exit_code, 0) << size.err;
  const int needed = ojson::parse(size.out)["queries"];
  EXPECT_EQ(c["suite_need"]["queries"], needed);
  EXPECT_NE(advice.find(fmt::format("grow the suite to {} queries", needed)), std::string::npos) << advice;
  EXPECT_EQ(c["options"][0]["step"], "grow_suite");
  EXPECT_NE(md.find("## Decision record\n\n**Outcome: failure** (q6 vs q8)"), std::string::npos);
}

// A mixed-width directory as mlx-lm's mixed recipes write them: the 8-bit model, but `module` taken
// from the 4-bit one, and config.json saying so.
void make_mixed(const std::string& q8, const std::string& q4, const std::string& module, const std::string& out) {
  fs::create_directories(out);
  for (const auto& e : fs::directory_iterator(q8))
    if (e.path().filename().string().rfind("model", 0) != 0) fs::copy(e.path(), out + "/" + e.path().filename().string());
  const auto a = io::ModelWeights::open(q8), b = io::ModelWeights::open(q4);
  const auto from = [&](const std::string& name) -> const io::ModelWeights& {
    return name.rfind(module + ".", 0) == 0 ? b : a;
  };
  std::vector<io::TensorSpec> specs;
  for (const std::string& name : a.names())
    specs.push_back({name, from(name).at(name).info->dtype, from(name).at(name).info->shape});
  io::SafetensorsWriter writer(out, specs, io::kDefaultMaxShardBytes);
  for (const std::string& name : a.names()) writer.write(name, from(name).bytes(name));
  writer.finish(0);
  ojson config = ojson::parse(slurp(out + "/config.json"));
  for (const char* key : {"quantization", "quantization_config"})
    if (config.contains(key)) config[key][module] = {{"group_size", 64}, {"bits", 4}};
  write(out + "/config.json", config.dump(2));
}

// Issue 7: every model's plan prediction next to its measurement, for a float, two quantized and a
// mixed directory (whose per-module entries the plan reads as its plan, issue 14), and a directory
// whose config.json names a module it does not have (which the plan cannot describe: a warning, and
// the bench still succeeds).
TEST_F(BenchCli, PlanPredictionStandsNextToEachMeasurement) {
  const std::string mixed = tmp_ / "mixed", stray = tmp_ / "stray";
  make_mixed(q("8"), q("4"), "model.layers.1.mlp.up_proj", mixed);
  fs::copy(q("6"), stray);
  ojson stray_config = ojson::parse(slurp(stray + "/config.json"));
  for (const char* key : {"quantization", "quantization_config"})
    stray_config[key]["model.layers.0.self_attn.no_such_proj"] = {{"group_size", 64}, {"bits", 4}};
  write(stray + "/config.json", stray_config.dump(2));
  const std::string report = tmp_ / "REPORT.md";
  const auto r = bench("--model f16=" + shell_quote(kFused) + " --model q8=" + shell_quote(q("8")) + " --model q6=" +
                       shell_quote(q("6")) + " --model mixed=" + shell_quote(mixed) + " --model stray=" + shell_quote(stray) +
                       " --suite " + shell_quote(kSeed5) +
                       " --max-tokens 6 --no-cold --threads 2 --bandwidth 12.5 --report " + shell_quote(report) +
                       out_flags());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: stray: no plan prediction: "), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("warning: mixed: no plan prediction: "), std::string::npos) << r.err;
  const ojson j = ojson::parse(slurp(tmp_ / "RESULTS.json"));
  EXPECT_EQ(j["machine"]["bandwidth_gb_per_s"], 12.5);
  const std::string dirs[] = {kFused, q("8"), q("6"), mixed};
  const int bits[] = {0, 8, 6, 8};  // the mixed model's global setting
  for (size_t i = 0; i < 4; ++i) {
    const ojson& m = j["models"][i];
    SCOPED_TRACE(m["name"].get<std::string>());
    ASSERT_TRUE(m["plan"].is_object()) << m["plan_warning"];
    const ojson& p = m["plan"];
    EXPECT_EQ(p["bits"], bits[i]);
    // Disk: the predicted tensor bytes are the weight files less their headers, exactly; the predicted
    // total (headers estimated) is within those headers of the measured one.
    const WeightFiles f = weight_files(dirs[i]);
    EXPECT_EQ(m["model"]["disk_bytes"], f.bytes);
    EXPECT_EQ(p["tensor_bytes"].get<uint64_t>(), f.bytes - f.header_bytes);
    EXPECT_NEAR(p["disk_bytes"].get<double>(), double(f.bytes), double(f.header_bytes));
    EXPECT_DOUBLE_EQ(p["measured_over_predicted"]["disk"].get<double>(), double(f.bytes) / p["disk_bytes"].get<double>());
    // Memory: at the session's context, which holds the longest prompt and the reply.
    uint64_t longest = 0;
    for (const ojson& q : m["queries"]) longest = std::max(longest, q["prompt_tokens"].get<uint64_t>());
    EXPECT_EQ(p["context"], longest + 6 + 1);
    EXPECT_EQ(p["prefill_batch"], std::min<uint64_t>(longest, 512));
    // The engine maps these weights, except the float16 norms, which it holds as f32 copies instead.
    EXPECT_EQ(p["tensor_bytes"].get<uint64_t>(),
              m["memory"]["weights_mapped_bytes"].get<uint64_t>() + m["memory"]["weights_copied_bytes"].get<uint64_t>() / 2);
    EXPECT_LE(m["memory"]["kv_cache_bytes"].get<uint64_t>(), p["kv_cache_bytes"].get<uint64_t>());
    EXPECT_DOUBLE_EQ(p["measured_over_predicted"]["memory"].get<double>(),
                     m["memory"]["model_bytes"].get<double>() / p["memory_bytes"].get<double>());
    // Decode: the bound is the given bandwidth over the bytes read per token.
    const double bound = 12.5e9 / p["bytes_per_token"].get<double>();
    EXPECT_DOUBLE_EQ(p["decode_tokens_per_second_bound"].get<double>(), bound);
    EXPECT_DOUBLE_EQ(p["measured_over_predicted"]["decode_fraction_of_bound"].get<double>(),
                     m["speed"]["decode_tokens_per_second"]["median"].get<double>() / bound);
  }
  // Fewer bits, fewer bytes read per token.
  EXPECT_GT(j["models"][0]["plan"]["bytes_per_token"], j["models"][1]["plan"]["bytes_per_token"]);
  EXPECT_GT(j["models"][1]["plan"]["bytes_per_token"], j["models"][2]["plan"]["bytes_per_token"]);
  // The mixed model's 4-bit up_proj: fewer bytes per token than uniform 8-bit.
  EXPECT_GT(j["models"][1]["plan"]["bytes_per_token"], j["models"][3]["plan"]["bytes_per_token"]);
  const ojson& m = j["models"][4];
  EXPECT_EQ(m["status"], "ok");
  EXPECT_TRUE(m["plan"].is_null());
  EXPECT_NE(m["plan_warning"].get<std::string>().find("no_such_proj"), std::string::npos) << m["plan_warning"];
  EXPECT_NE(r.out.find("plan vs measured (decode bound = 12.5 GB/s (given (--bandwidth))"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("stray          no plan: "), std::string::npos) << r.out;
  const std::string md = slurp(report);
  EXPECT_NE(md.find("## Plan vs measured"), std::string::npos);
  EXPECT_NE(md.find("| f16 | float as stored |"), std::string::npos) << md;
  EXPECT_NE(md.find("| q6 | 6-bit g64 |"), std::string::npos) << md;
  EXPECT_NE(md.find("> No plan for stray: "), std::string::npos) << md;
  EXPECT_EQ(md.find("> No plan for mixed: "), std::string::npos) << md;
}

// The acceptance test: quantized to 8 and 6 bits, the fused model keeps the float16 model's
// accuracy on dev40, query by query. The decision is made in the first tokens, so 24 are enough.
TEST_F(BenchCli, EightAndSixBitKeepTheFloat16AccuracyOnDev40) {
  const auto r = bench("--model f16=" + shell_quote(kFused) + " --model q8=" + shell_quote(q("8")) +
                       " --model q6=" + shell_quote(q("6")) + " --baseline q8 --suite " + shell_quote(kDev40) +
                       " --max-tokens 24 --no-cold" + out_flags());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const ojson j = ojson::parse(slurp(tmp_ / "RESULTS.json"));
  ASSERT_EQ(j["models"].size(), 3u);
  const ojson& f16 = j["models"][0];
  // The fixture's provenance: with transformers the fused model answers every in-domain query right.
  EXPECT_EQ(f16["accuracy"]["overall"]["correct"], 40) << r.out;
  for (size_t m = 1; m < 3; ++m) {
    SCOPED_TRACE(j["models"][m]["name"].get<std::string>());
    EXPECT_EQ(j["models"][m]["accuracy"]["overall"]["correct"], f16["accuracy"]["overall"]["correct"]);
    for (size_t i = 0; i < 40; ++i)
      EXPECT_EQ(j["models"][m]["queries"][i]["correct"], f16["queries"][i]["correct"]) << i;
  }
  for (const ojson& c : j["comparisons"]) {
    EXPECT_EQ(c["baseline"], "q8");
    EXPECT_EQ(c["accuracy"]["lost"], 0);
  }
  // Issue 22: 6-bit keeps the accuracy and fails on size only; the next steps are the settings the plan
  // predicts to pass (from the float model benched beside them), each with its size, and a mixed plan.
  const ojson& c = j["comparisons"][1];
  ASSERT_EQ(c["candidate"], "q6");
  // Size first; a speed problem may follow (one run, and the machine busy with other tests).
  ASSERT_FALSE(c["problems"].empty());
  EXPECT_EQ(c["problems"][0], "size") << c.dump(2);
  for (const ojson& p : c["problems"]) EXPECT_TRUE(p == "size" || p == "speed") << c.dump(2);
  ASSERT_EQ(c["options"].size(), 3u) << c.dump(2);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(c["options"][i]["step"], "try_larger_group_or_fewer_bits");
    EXPECT_EQ(c["options"][i]["command"].get<std::string>().rfind("quantlab quantize " + kFused + " q", 0), 0u);
    EXPECT_NE(c["options"][i]["prediction"].get<std::string>().find(" on disk ("), std::string::npos);
  }
  EXPECT_NE(c["options"][0]["prediction"].get<std::string>().find("passes the size rules"), std::string::npos);
  EXPECT_NE(c["options"][2]["command"].get<std::string>().find("mixed --smaller-than 8:64 --by 25 --calibration"),
            std::string::npos);
}

}  // namespace
}  // namespace quantlab::testing
