// Deterministic everywhere (issue 19): every artefact that is not a timing is byte-identical for 1, 2
// and 4 threads — quantized files (dense and MoE), fused and pruned models, expert profiles, logits,
// calibration statistics, sensitivities with measured gains, mixed-precision plans, weight and output
// retention, bench decisions, greedy text.
// JSON outputs are compared with their timing fields removed.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "cli_support.h"

namespace quantlab::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kDense = shell_quote(data_path("tool-calling/dense-fused-strong-f16"));
const std::string kBase = shell_quote(data_path("tool-calling/dense-base-f16"));
const std::string kLora = shell_quote(data_path("tool-calling/dense-lora-strong"));
const std::string kMoe = shell_quote(data_path("tool-calling/moe-fused-strong-f16"));
const std::string kSuite = " --suite " + shell_quote(data_path("tool-calling/queries/seed5.jsonl")) + " --tools " +
                           shell_quote(data_path("tool-calling/tools.json"));

// Timings and paths differ between runs by nature; everything else must not.
void strip_run_specific(json& j) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end();) {
      const std::string& k = it.key();
      const bool timing = k.find("seconds") != std::string::npos || k.find("per_s") != std::string::npos ||
                          k.find("tps") != std::string::npos || k.find("_ms") != std::string::npos ||
                          k == "dir" || k == "out" || k == "model" || k == "work_dir";
      if (timing) it = j.erase(it);
      else strip_run_specific(*it++);
    }
  } else if (j.is_array()) {
    for (auto& v : j) strip_run_specific(v);
  }
}

std::string canonical_json(const std::string& text) {
  json j = json::parse(text);
  strip_run_specific(j);
  return j.dump();
}

// Runs `command(threads, dir)` for 1, 2 and 4 threads and compares what `artefact(dir)` reads back.
void expect_same_for_every_thread_count(const std::string& what,
                                        const std::function<std::string(const std::string&, const fs::path&)>& command,
                                        const std::function<std::string(const fs::path&)>& artefact) {
  SCOPED_TRACE(what);
  TempDir tmp;
  std::string first;
  for (const char* threads : {"1", "2", "4"}) {
    const fs::path dir = tmp / (std::string("t") + threads);
    fs::create_directories(dir);
    const RunResult r = run_quantlab(command(threads, dir));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string got = artefact(dir);
    ASSERT_FALSE(got.empty());
    if (first.empty()) first = got;
    else EXPECT_TRUE(got == first) << what << " differs with " << threads << " threads";
  }
}

std::string file(const fs::path& p) { return slurp(p); }
std::string json_file(const fs::path& p) { return canonical_json(slurp(p)); }
std::string q(const fs::path& p) { return shell_quote(p); }

TEST(Determinism, FilesAreTheSameForOneTwoAndFourThreads) {
  expect_same_for_every_thread_count(
      "quantize dense 4-bit", [](auto t, auto d) { return "quantize " + kDense + " " + q(d / "q") + " --bits 4 --threads " + t; },
      [](auto d) { return file(d / "q/model.safetensors"); });
  expect_same_for_every_thread_count(
      "quantize MoE 3-bit", [](auto t, auto d) { return "quantize " + kMoe + " " + q(d / "q") + " --bits 3 --threads " + t; },
      [](auto d) { return file(d / "q/model.safetensors"); });
  expect_same_for_every_thread_count(
      "fuse", [](auto t, auto d) { return "fuse " + kBase + " " + kLora + " " + q(d / "f") + " --threads " + t; },
      [](auto d) { return file(d / "f/model.safetensors"); });
  expect_same_for_every_thread_count(
      "logits", [](auto t, auto d) { return "logits " + kMoe + " --ids 1,5,9,200,7 --out " + q(d / "l.safetensors") + " --threads " + t; },
      [](auto d) { return file(d / "l.safetensors"); });
  expect_same_for_every_thread_count(
      "calibrate",
      [](auto t, auto d) { return "calibrate " + kMoe + kSuite + " --max-tokens 8 --out " + q(d / "s.safetensors") + " --threads " + t; },
      [](auto d) { return file(d / "s.safetensors"); });
}

TEST(Determinism, AnalysesAreTheSameForOneTwoAndFourThreads) {
  expect_same_for_every_thread_count(
      "experts and prune",
      [](auto t, auto d) {
        return "experts " + kMoe + kSuite + " --max-tokens 8 --out " + q(d / "e") + " --quiet --threads " + t +
               " && " + std::string(QUANTLAB_BINARY) + " prune " + kMoe + " " + q(d / "p") + " --profile " +
               q(d / "e/experts.json") + " --keep-ratio 0.5";
      },
      [](auto d) { return json_file(d / "e/experts.json") + file(d / "p/model.safetensors"); });
  expect_same_for_every_thread_count(
      "sensitivity with measured gains",
      [](auto t, auto d) {
        return "calibrate " + kDense + kSuite + " --max-tokens 8 --out " + q(d / "s.safetensors") + " && " +
               std::string(QUANTLAB_BINARY) + " sensitivity " + kDense + " --base " + kBase + " --stats " +
               q(d / "s.safetensors") + " --candidates 2,4 " + kSuite + " --gain-queries 2 --gain-tokens 6 --out " +
               q(d / "sens.json") + " --quiet --threads " + t;
      },
      [](auto d) { return json_file(d / "sens.json"); });
  expect_same_for_every_thread_count(
      "retention from weights and outputs",
      [](auto t, auto d) {
        return "retention --base " + kBase + " --fused " + kDense + " --bits 3,6" + kSuite + " --max-tokens 8 --out " +
               q(d / "r") + " --quiet --threads " + t;
      },
      [](auto d) { return json_file(d / "r/retention.json"); });
  expect_same_for_every_thread_count(
      "mixed-precision plan and its model",
      [](auto t, auto d) {
        return "quantize " + kDense + " " + q(d / "m") + " --target-bpw 3.5 --calibration " +
               shell_quote(data_path("tool-calling/queries/seed5.jsonl")) + " --quiet --threads " + t;
      },
      [](auto d) { return json_file(d / "m/quantlab_plan.json") + file(d / "m/model.safetensors"); });
  expect_same_for_every_thread_count(
      "bench decisions",
      [](auto t, auto d) {
        return "bench --model f16=" + kDense + kSuite + " --max-tokens 24 --no-cold --out " + q(d / "r.json") +
               " --threads " + t;
      },
      [](auto d) {  // per query: the decision, the tool called, the reply and its tokens; then the tally
        const json r = json::parse(slurp(d / "r.json"));
        std::string seen;
        for (const json& m : r["models"]) {
          for (const json& query : m["queries"])
            seen += query["decision"].dump() + query["called_tool"].dump() + query["reply"].dump() +
                    query["generated_tokens"].dump();
          seen += m["accuracy"].dump();
        }
        return seen;
      });
  expect_same_for_every_thread_count(
      "greedy text",
      [](auto t, auto d) {
        return "generate " + kMoe + " --ids 1,5,9,200 --max-tokens 24 --ignore-eos --json --threads " + t + " > " +
               q(d / "g.json") + " && true";  // run_quantlab's own redirection then applies to `true`
      },
      [](auto d) {  // the tokens and text; "stats" holds timings and the thread-dependent scratch size
        const json g = json::parse(slurp(d / "g.json"));
        return g["tokens"].dump() + g["text"].dump() + g["stop_reason"].dump();
      });
}

}  // namespace
}  // namespace quantlab::testing
