// RESULTS.json round trip, its reader's errors, comparisons from results, and the text views.
#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/report_schema.h"
#include "eval/report_text.h"

namespace quantlab::eval {
namespace {

using ojson = nlohmann::ordered_json;

QueryResult query(const std::string& id, bool expect_tool, bool correct, double margin) {
  QueryResult q;
  q.id = id;
  q.line = 7;
  q.expect_tool = expect_tool;
  if (expect_tool) q.expected_tool = "get_time";
  q.score.decided_tool = expect_tool == correct;
  q.score.decision_correct = correct;
  if (q.score.decided_tool) q.score.called_tool = "get_time";
  if (expect_tool && q.score.decided_tool) q.score.tool_correct = true;
  q.score.correct = correct;
  q.first_token_margin = margin;
  q.best_other_token = "It";
  q.prompt_tokens = 120;
  q.generated_tokens = 9;
  q.stop_reason = "stop_token";
  q.seconds = 0.0125;
  q.reply = correct && expect_tool ? "<tool_call>\n{\"name\": \"get_time\"}" : "Hello ```code```";
  return q;
}

ModelResult model(const std::string& name, int bits, uint64_t disk, double decode_tps, std::vector<bool> correct) {
  ModelResult m;
  m.name = name;
  m.dir = "/models/" + name;
  m.ok = true;
  m.info = {"qwen3", bits > 0, bits, 64, 1234567, bits + 0.5, disk, 0, "tok-qwen3", "tmpl-qwen3"};
  m.load.seconds = 0.25;
  m.load.cache_state = "warm";
  m.load.resident_fraction_before = 1.0;
  m.load.process_start_seconds = 0.001;
  m.load.model_seconds = 0.2;
  m.load.text_seconds = 0.03;
  m.load.first_forward_seconds = 0.019;
  m.load.cold = {true, true, 0.0, 0.5, ""};
  m.memory = {50000000, 20000000, 30000000, disk, disk, 4096, 65536, 131072};
  m.speed.runs = {{500, 0.5, 90, 0.9, 0.02, 0.018}, {500, 0.4, 90, 0.8, 0.019, 0.017}};
  m.speed.runs[0].decode_tokens = static_cast<size_t>(decode_tps * m.speed.runs[0].decode_seconds + 0.5);
  for (size_t i = 0; i < correct.size(); ++i)
    m.queries.push_back(query(fmt::format("q{}", i), i % 2 == 0, correct[i], 1.5 - i));
  std::vector<QueryScore> scores;
  std::vector<Query> qs(correct.size());
  for (size_t i = 0; i < correct.size(); ++i) {
    scores.push_back(m.queries[i].score);
    qs[i].expect_tool = m.queries[i].expect_tool;
  }
  m.accuracy = summarize_scores(qs, scores);
  m.harness = {2.0, 1.9, 0.1};
  return m;
}

// q8's prediction: disk 998,000 (measured 1,000,000), memory 1,175,536 (measured 1,200,704), 800 kB read per
// token at 20 GB/s: a bound of 25,000 tok/s.
PlanPrediction sample_plan() {
  PlanPrediction p;
  p.origin = "config.json + MLX-quantized headers";
  p.bits = 8;
  p.group_size = 64;
  p.context = 400;
  p.prefill_batch = 380;
  p.threads = 2;
  p.tensor_bytes = 990000;
  p.header_bytes = 8000;
  p.kv_cache_bytes = 65536;
  p.scratch_bytes = 120000;
  p.bytes_per_token = 800000;
  p.bandwidth_gb_per_s = 20;
  return p;
}

BenchResults sample_results() {
  BenchResults r;
  r.quantlab_version = "0.1.0";
  r.created_utc = "2025-01-01T00:00:00Z";
  r.machine = {"Test CPU", "AVX2", 2, 20.0, "given (--bandwidth)"};
  r.settings.suite = "tests/data/tool-calling/queries/seed5.jsonl";
  r.settings.tools = "tests/data/tool-calling/tools.json";
  r.settings.suite_queries = 5;
  r.settings.runs = 2;
  r.settings.threads = 2;
  r.settings.baseline = "q8";
  r.settings.criteria = default_criteria();
  r.settings.criteria.minimum_viable.speed_ratio.reset();  // a level without a rule must survive too
  r.models.push_back(model("q8", 8, 1000000, 100, {true, true, true, true, true}));
  r.models.push_back(model("q6", 6, 760000, 105, {true, false, true, true, false}));
  r.models[0].plan = sample_plan();
  r.models[1].plan_warning = "the plan cannot describe this model: mixed";
  ModelResult broken;
  broken.name = "broken";
  broken.dir = "/nowhere";
  broken.error = "/nowhere/config.json: cannot open";
  r.models.push_back(broken);
  r.total_seconds = 9.5;
  r.workers_seconds = 9.0;
  add_comparisons(r);
  return r;
}

TEST(Report, ComparisonsSkipFailedModels) {
  const BenchResults r = sample_results();
  ASSERT_EQ(r.comparisons.size(), 1u);
  const Comparison& c = r.comparisons[0];
  EXPECT_EQ(c.baseline, "q8");
  EXPECT_EQ(c.candidate, "q6");
  EXPECT_NEAR(c.disk_smaller_pct, 24.0, 1e-9);
  EXPECT_EQ(c.paired.lost, 2u);
  EXPECT_EQ(c.paired.gained, 0u);
  EXPECT_EQ(c.verdict, Verdict::kFailure);  // 60 % and 24 % smaller
}

TEST(Report, FiguresUseTheMedianRunAndARobustSpread) {
  ModelResult m = model("q8", 8, 1000000, 100, {true});
  // One run disturbed by a background job: it moves neither the speed nor the spread much.
  m.speed.runs = {{100, 1, 1260, 1.0, 0, 0}, {100, 1, 351, 1.0, 0, 0}, {100, 1, 1245, 1.0, 0, 0}};
  const ModelFigures f = figures_of(m);
  EXPECT_DOUBLE_EQ(f.decode_tps, 1245);
  EXPECT_NEAR(f.decode_tps_rel_spread, 1.4826 * 15 / 1245, 1e-12);
  EXPECT_EQ(f.runs, 3);
  EXPECT_EQ(f.bits, 8);
  EXPECT_EQ(f.memory_bytes, m.memory.model_bytes());
  EXPECT_DOUBLE_EQ(f.accuracy_pct, 100);
}

TEST(Report, UnknownOrFailedBaseline) {
  BenchResults r = sample_results();
  r.settings.baseline = "q5";
  try {
    add_comparisons(r);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find("'q5'"), std::string::npos);
  }
  r.settings.baseline = "broken";
  add_comparisons(r);
  EXPECT_TRUE(r.comparisons.empty());
}

TEST(Report, JsonRoundTripKeepsEveryField) {
  const BenchResults before = sample_results();
  const ojson j = to_json(before);
  const BenchResults after = bench_results_from_json(ojson::parse(j.dump()), "RESULTS.json");
  // Writing what was read gives the same document: no field is lost or changed on the way.
  EXPECT_EQ(to_json(after).dump(), j.dump());
  // And the fields themselves, spot-checked through the structs.
  EXPECT_EQ(after.schema, "quantlab.bench/3");
  EXPECT_EQ(after.machine.bandwidth_gb_per_s, 20.0);
  EXPECT_EQ(after.machine.bandwidth_source, "given (--bandwidth)");
  ASSERT_TRUE(after.models[0].plan.has_value());
  EXPECT_EQ(after.models[0].plan->scratch_bytes, 120000u);
  EXPECT_EQ(after.models[0].plan->prefill_batch, 380u);
  EXPECT_FALSE(after.models[1].plan.has_value());
  EXPECT_EQ(after.models[1].plan_warning, "the plan cannot describe this model: mixed");
  EXPECT_EQ(after.machine.cpu, "Test CPU");
  EXPECT_FALSE(after.settings.criteria.minimum_viable.speed_ratio.has_value());
  EXPECT_EQ(after.settings.criteria.optimal.speed_ratio, 1.1);
  ASSERT_EQ(after.models.size(), 3u);
  const ModelResult& q6 = after.models[1];
  EXPECT_EQ(q6.info.bits, 6);
  EXPECT_EQ(q6.memory.model_bytes(), 760000u + 4096 + 65536 + 131072);
  EXPECT_EQ(q6.load.cold.seconds, 0.5);
  EXPECT_EQ(q6.speed.runs.size(), 2u);
  EXPECT_DOUBLE_EQ(q6.speed.decode_tps().min, q6.speed.runs[0].decode_tps());
  EXPECT_EQ(q6.accuracy.overall.correct, 3u);
  EXPECT_EQ(q6.queries[1].score.correct, false);
  EXPECT_EQ(q6.queries[0].first_token_margin, 1.5);
  EXPECT_EQ(q6.queries[0].score.tool_correct, true);
  EXPECT_FALSE(q6.queries[1].score.tool_correct.has_value());
  EXPECT_FALSE(after.models[2].ok);
  EXPECT_EQ(after.models[2].error, "/nowhere/config.json: cannot open");
  ASSERT_EQ(after.comparisons.size(), 1u);
  EXPECT_EQ(after.comparisons[0].verdict, Verdict::kFailure);
  EXPECT_EQ(after.comparisons[0].next_steps, before.comparisons[0].next_steps);
  EXPECT_EQ(after.comparisons[0].warnings, before.comparisons[0].warnings);
  EXPECT_EQ(after.total_seconds, 9.5);
}

TEST(Report, JsonHasTheDocumentedSummaries) {
  const ojson j = to_json(sample_results());
  const ojson& m = j["models"][0];
  for (const char* key : {"model", "load", "memory", "speed", "accuracy", "queries", "harness"})
    EXPECT_TRUE(m.contains(key)) << key;
  EXPECT_EQ(m["speed"]["decode_tokens_per_second"]["n"], 2);
  EXPECT_EQ(m["accuracy"]["overall"]["pct"], 100.0);
  EXPECT_EQ(m["accuracy"]["overall"]["wilson95_pct"].size(), 2u);
  EXPECT_EQ(m["queries"][0]["expected"], "tool");
  EXPECT_TRUE(m["queries"][0].contains("reply"));
  EXPECT_TRUE(m["load"]["cold"].contains("achieved"));
  EXPECT_EQ(j["models"][2]["status"], "failed");
}

TEST(Report, ReaderNamesTheBadField) {
  const ojson good = to_json(sample_results());
  auto expect_error = [](ojson j, const std::string& needle) {
    try {
      bench_results_from_json(j, "RESULTS.json");
      ADD_FAILURE() << "expected an error naming " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  ojson j = good;
  j["models"][1]["speed"]["runs"][0].erase("decode_tokens");
  expect_error(j, "RESULTS.json: models[1].speed.runs[0].decode_tokens: missing");
  j = good;
  j["models"][0]["queries"][2]["correct"] = "yes";
  expect_error(j, "models[0].queries[2].correct: expected true or false");
  j = good;
  j["comparisons"][0]["verdict"] = "splendid";
  expect_error(j, "comparisons[0].verdict: unknown value 'splendid'");
  j = good;
  j["schema"] = "quantlab.bench/0";
  expect_error(j, "schema: expected 'quantlab.bench/3' (or 'quantlab.bench/2', 'quantlab.bench/1')");
  j = good;
  j["models"][0]["plan"].erase("bytes_per_token");
  expect_error(j, "models[0].plan.bytes_per_token: missing");
  j = good;
  j["machine"].erase("bandwidth_gb_per_s");
  expect_error(j, "machine.bandwidth_gb_per_s: missing");
  j = good;
  j["models"][0]["accuracy"]["overall"]["correct"] = -1;
  expect_error(j, "models[0].accuracy.overall.correct: expected a non-negative integer");
}

// The JSON states each prediction, the bound bandwidth / bytes per token, and measured / predicted.
TEST(Report, PlanStandsNextToTheMeasurement) {
  const ojson j = to_json(sample_results());
  const ojson& p = j["models"][0]["plan"];
  EXPECT_EQ(p["disk_bytes"], 998000);
  EXPECT_EQ(p["memory_bytes"], 990000 + 65536 + 120000);
  EXPECT_DOUBLE_EQ(p["decode_tokens_per_second_bound"].get<double>(), 20e9 / 800000);
  EXPECT_DOUBLE_EQ(p["measured_over_predicted"]["disk"].get<double>(), 1000000.0 / 998000);
  EXPECT_DOUBLE_EQ(p["measured_over_predicted"]["memory"].get<double>(), 1200704.0 / 1175536);
  // Decode: 100 and 112.5 tok/s over the two runs, median 106.25.
  EXPECT_DOUBLE_EQ(p["measured_over_predicted"]["decode_fraction_of_bound"].get<double>(), 106.25 / 25000);
  EXPECT_EQ(j["models"][0]["plan_warning"], "");
  EXPECT_TRUE(j["models"][1]["plan"].is_null());
  EXPECT_EQ(j["models"][1]["plan_warning"], "the plan cannot describe this model: mixed");
  EXPECT_EQ(j["machine"]["bandwidth_gb_per_s"], 20.0);
  // Without a bandwidth there is no bound, and no fraction of it.
  BenchResults r = sample_results();
  r.models[0].plan->bandwidth_gb_per_s = 0;
  const ojson k = to_json(r)["models"][0]["plan"];
  EXPECT_EQ(k["decode_tokens_per_second_bound"], 0.0);
  EXPECT_EQ(k["measured_over_predicted"]["decode_fraction_of_bound"], 0.0);
}

// Files written before the plan existed (schema 1) still read: no plan, no bandwidth.
TEST(Report, ReadsSchemaOneWithoutPlans) {
  ojson j = to_json(sample_results());
  j["schema"] = "quantlab.bench/1";
  j["machine"].erase("bandwidth_gb_per_s");
  j["machine"].erase("bandwidth_source");
  for (ojson& m : j["models"]) m.erase("plan"), m.erase("plan_warning");
  const BenchResults b = bench_results_from_json(j, "old.json");
  EXPECT_EQ(b.schema, "quantlab.bench/3");  // upgraded on reading: written back, it has every field of 3
  EXPECT_EQ(b.machine.bandwidth_gb_per_s, 0.0);
  ASSERT_EQ(b.models.size(), 3u);
  EXPECT_FALSE(b.models[0].plan.has_value());
  EXPECT_EQ(b.models[0].plan_warning, "");
  EXPECT_NE(render_markdown(b).find("> No plan for q8: not recorded with this result."), std::string::npos);
}

// Issue 20: a bench across families says which models share a tokenizer and chat template.
TEST(Report, SaysWhichModelsShareATokenizerAndTemplate) {
  BenchResults r = sample_results();
  EXPECT_NE(render_markdown(r).find("All models share one tokenizer and chat template."), std::string::npos);
  EXPECT_EQ(render_table(r).find("tokenizers and chat templates differ"), std::string::npos);
  r.models[1].info.architecture = "qwen2";
  r.models[1].info.chat_template_digest = "tmpl-qwen2";
  const std::string md = render_markdown(r);
  EXPECT_NE(md.find("### Tokenizers and chat templates"), std::string::npos);
  EXPECT_NE(md.find("| q8 | qwen3 | A | A |"), std::string::npos) << md;
  EXPECT_NE(md.find("| q6 | qwen2 | A | B |"), std::string::npos) << md;
  EXPECT_NE(render_table(r).find("q6 tokenizer A template B;"), std::string::npos);
  // Written and read back.
  const BenchResults back = bench_results_from_json(to_json(r), "r.json");
  EXPECT_EQ(back.models[1].info.chat_template_digest, "tmpl-qwen2");
}

TEST(Report, MarkdownShowsVerdictsQueriesAndFailures) {
  const std::string md = render_markdown(sample_results());
  EXPECT_NE(md.find("### q6 vs q8: **failure**"), std::string::npos);
  EXPECT_NE(md.find("accuracy 60.0 % >= 80 %: fails"), std::string::npos);
  EXPECT_NE(md.find("disk 24.0 % smaller >= 25 %: fails"), std::string::npos);
  EXPECT_NE(md.find("**Next step**: keep q8; q6 loses accuracy: 60.0 % < 80 %, where the baseline q8 passes (100.0 "
                    "%); worse or not, 5 queries cannot tell"),
            std::string::npos)
      << md;
  // The decision record leads the report: outcome, evidence with causes, what to do now.
  EXPECT_LT(md.find("## Decision record"), md.find("## Models"));
  EXPECT_NE(md.find("**Outcome: failure** (q6 vs q8). keep q8;"), std::string::npos);
  EXPECT_NE(md.find("Problem: accuracy, then size."), std::string::npos);
  EXPECT_NE(md.find("| q6 | minimum_viable | accuracy_min_pct | 60.000 | 80 | **fail** | where the baseline q8 passes"),
            std::string::npos);
  EXPECT_NE(md.find("**Now**: keep q8 (`"), std::string::npos);
  EXPECT_NE(md.find("> Warning: 5 queries cannot show any accuracy difference"), std::string::npos);
  EXPECT_NE(md.find("**broken failed**: /nowhere/config.json: cannot open"), std::string::npos);
  EXPECT_NE(md.find("| q1 | direct |"), std::string::npos);
  EXPECT_NE(md.find("✗ tool get_time (+0.50)"), std::string::npos);  // q1 under q6: wrong, margin 1.5 - 1
  EXPECT_NE(md.find("| q8 | 2.000 | 1.900 | 0.1000 | 5.00 % |"), std::string::npos);
  EXPECT_NE(md.find("## Plan vs measured"), std::string::npos);
  EXPECT_NE(md.find("decode bound = 20.0 GB/s (given (--bandwidth))"), std::string::npos);
  EXPECT_NE(md.find("| q8 | 8-bit g64 | 998.0 kB | 1.00 MB | 1.002 | 1.18 MB | 1.20 MB | 1.021 | 800.0 kB | 25000.0 | "
                    "106.2 | 0 % |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("> No plan for q6: the plan cannot describe this model: mixed."), std::string::npos);
  // Reply text cannot close the report's code fence.
  EXPECT_EQ(md.find("Hello ```code```"), std::string::npos);
}

TEST(Report, TableListsEveryModel) {
  const std::string t = render_table(sample_results());
  EXPECT_NE(t.find("q8"), std::string::npos);
  EXPECT_NE(t.find("6-bit g64"), std::string::npos);
  EXPECT_NE(t.find("broken         FAILED: /nowhere/config.json: cannot open"), std::string::npos);
  EXPECT_NE(t.find("q6 vs q8: failure"), std::string::npos);
  EXPECT_NE(t.find("next step: keep q8"), std::string::npos);
  EXPECT_NE(t.find("plan vs measured (decode bound = 20.0 GB/s"), std::string::npos) << t;
  EXPECT_NE(t.find("q6             no plan: the plan cannot describe this model: mixed"), std::string::npos) << t;
  const size_t row = t.find("\nq8                   8-bit g64");
  ASSERT_NE(row, std::string::npos) << t;
  EXPECT_NE(t.substr(row, t.find('\n', row + 1) - row).find("25000.0"), std::string::npos) << t;
}

TEST(Report, FormatBytes) {
  EXPECT_EQ(format_bytes(999), "999 B");
  EXPECT_EQ(format_bytes(1500), "1.50 kB");
  EXPECT_EQ(format_bytes(23400000000), "23.4 GB");
}

}  // namespace
}  // namespace quantlab::eval
