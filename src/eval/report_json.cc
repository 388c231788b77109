// RESULTS.json writing and reading (docs/bench-schema.md). Each struct has a writer and a reader next
// to each other so that a field added to one is easy to see missing from the other.
#include <fmt/format.h>

#include "core/error.h"
#include "eval/report_json_reader.h"
#include "eval/report_schema.h"

namespace quantlab::eval {

using ojson = nlohmann::ordered_json;

namespace {

template <typename T>
ojson or_null(const std::optional<T>& v) {
  return v ? ojson(*v) : ojson(nullptr);
}

// --- statistics -------------------------------------------------------------------------------

ojson summary_json(const Summary& s) {
  return {{"mean", s.mean}, {"median", s.median}, {"stddev", s.stddev}, {"min", s.min}, {"max", s.max}, {"n", s.n}};
}

ojson tally_json(const Tally& t) {
  return {{"correct", t.correct},
          {"total", t.total},
          {"pct", t.pct()},
          {"wilson95_pct", {100 * t.wilson95.low, 100 * t.wilson95.high}}};
}

Tally read_tally(const JsonReader& r) {
  const Tally t = make_tally(r.count("correct"), r.count("total"));
  if (t.correct > t.total) r.fail("correct", "more than total");
  return t;
}

ojson accuracy_json(const AccuracySummary& a) {
  return {{"overall", tally_json(a.overall)},           {"decision", tally_json(a.decision)},
          {"tool_queries", tally_json(a.tool_queries)}, {"direct_queries", tally_json(a.direct_queries)},
          {"tool_name", tally_json(a.tool_name)},       {"arguments", tally_json(a.arguments)}};
}

AccuracySummary read_accuracy(const JsonReader& r) {
  return {read_tally(r.object("overall")),      read_tally(r.object("decision")),
          read_tally(r.object("tool_queries")), read_tally(r.object("direct_queries")),
          read_tally(r.object("tool_name")),    read_tally(r.object("arguments"))};
}

// --- per query ----------------------------------------------------------------------------------

ojson query_json(const QueryResult& q) {
  const QueryScore& s = q.score;
  return {{"id", q.id},
          {"line", q.line},
          {"expected", q.expect_tool ? "tool" : "direct"},
          {"expected_tool", or_null(q.expected_tool)},
          {"decision", s.decided_tool ? "tool" : "direct"},
          {"called_tool", or_null(s.called_tool)},
          {"decision_correct", s.decision_correct},
          {"tool_correct", or_null(s.tool_correct)},
          {"arguments_correct", or_null(s.arguments_correct)},
          {"correct", s.correct},
          {"note", s.note},
          {"first_token_margin", or_null(q.first_token_margin)},
          {"best_other_token", q.best_other_token},
          {"prompt_tokens", q.prompt_tokens},
          {"generated_tokens", q.generated_tokens},
          {"stop_reason", q.stop_reason},
          {"seconds", q.seconds},
          {"reply", q.reply}};
}

bool tool_or_direct(const JsonReader& r, std::string_view key) {
  const std::string v = r.str(key);
  if (v != "tool" && v != "direct") r.fail(key, "expected \"tool\" or \"direct\"");
  return v == "tool";
}

QueryResult read_query(const JsonReader& r) {
  QueryResult q;
  q.id = r.str("id");
  q.line = r.count("line");
  q.expect_tool = tool_or_direct(r, "expected");
  q.expected_tool = r.opt_str("expected_tool");
  q.score.decided_tool = tool_or_direct(r, "decision");
  q.score.called_tool = r.opt_str("called_tool");
  q.score.decision_correct = r.flag("decision_correct");
  q.score.tool_correct = r.opt_flag("tool_correct");
  q.score.arguments_correct = r.opt_flag("arguments_correct");
  q.score.correct = r.flag("correct");
  q.score.note = r.str("note");
  q.first_token_margin = r.opt_num("first_token_margin");
  q.best_other_token = r.str("best_other_token");
  q.prompt_tokens = r.count("prompt_tokens");
  q.generated_tokens = r.count("generated_tokens");
  q.stop_reason = r.str("stop_reason");
  q.seconds = r.num("seconds");
  q.reply = r.str("reply");
  return q;
}

// --- speed, load, memory, model -------------------------------------------------------------------

ojson speed_json(const SpeedResult& s) {
  ojson runs = ojson::array();
  for (const SpeedRun& run : s.runs)
    runs.push_back({{"prefill_tokens", run.prefill_tokens},
                    {"prefill_seconds", run.prefill_seconds},
                    {"prefill_tokens_per_second", run.prefill_tps()},
                    {"decode_tokens", run.decode_tokens},
                    {"decode_seconds", run.decode_seconds},
                    {"decode_tokens_per_second", run.decode_tps()},
                    {"mean_query_seconds", run.mean_query_seconds},
                    {"median_query_seconds", run.median_query_seconds}});
  return {{"prefill_tokens_per_second", summary_json(s.prefill_tps())},
          {"decode_tokens_per_second", summary_json(s.decode_tps())},
          {"mean_query_seconds", summary_json(s.mean_query_seconds())},
          {"median_query_seconds", summary_json(s.median_query_seconds())},
          {"replies_identical_across_runs", s.replies_identical_across_runs},
          {"runs", runs}};
}

// The summaries are derived from the runs, so only the runs are read back.
SpeedResult read_speed(const JsonReader& r) {
  SpeedResult s;
  s.replies_identical_across_runs = r.flag("replies_identical_across_runs");
  for (const JsonReader& run : r.array("runs"))
    s.runs.push_back({run.count("prefill_tokens"), run.num("prefill_seconds"), run.count("decode_tokens"),
                      run.num("decode_seconds"), run.num("mean_query_seconds"), run.num("median_query_seconds")});
  return s;
}

ojson load_json(const LoadResult& l) {
  const ColdLoad& c = l.cold;
  return {{"seconds", l.seconds},
          {"cache_state", l.cache_state},
          {"resident_fraction_before", l.resident_fraction_before},
          {"process_start_seconds", l.process_start_seconds},
          {"model_seconds", l.model_seconds},
          {"text_seconds", l.text_seconds},
          {"first_forward_seconds", l.first_forward_seconds},
          {"cold",
           {{"attempted", c.attempted},
            {"achieved", c.achieved},
            {"resident_fraction_before", c.resident_fraction_before},
            {"seconds", or_null(c.seconds)},
            {"note", c.note}}}};
}

LoadResult read_load(const JsonReader& r) {
  LoadResult l;
  l.seconds = r.num("seconds");
  l.cache_state = r.str("cache_state");
  l.resident_fraction_before = r.num("resident_fraction_before");
  l.process_start_seconds = r.num("process_start_seconds");
  l.model_seconds = r.num("model_seconds");
  l.text_seconds = r.num("text_seconds");
  l.first_forward_seconds = r.num("first_forward_seconds");
  const JsonReader c = r.object("cold");
  l.cold = {c.flag("attempted"), c.flag("achieved"), c.num("resident_fraction_before"), c.opt_num("seconds"),
            c.str("note")};
  return l;
}

ojson memory_json(const MemoryResult& m) {
  return {{"model_bytes", m.model_bytes()},
          {"peak_rss_bytes", m.peak_rss},
          {"rss_file_bytes", m.rss_file},
          {"rss_anon_bytes", m.rss_anon},
          {"weights_mapped_bytes", m.weights_mapped},
          {"weights_resident_bytes", m.weights_resident},
          {"weights_copied_bytes", m.weights_copied},
          {"kv_cache_bytes", m.kv_cache},
          {"scratch_bytes", m.scratch}};
}

MemoryResult read_memory(const JsonReader& r) {
  return {r.count("peak_rss_bytes"),       r.count("rss_file_bytes"),         r.count("rss_anon_bytes"),
          r.count("weights_mapped_bytes"), r.count("weights_resident_bytes"), r.count("weights_copied_bytes"),
          r.count("kv_cache_bytes"),       r.count("scratch_bytes")};
}

ojson info_json(const ModelInfo& i) {
  return {{"architecture", i.architecture}, {"quantized", i.quantized}, {"bits", i.bits},
          {"group_size", i.group_size},     {"params", i.params},       {"bits_per_weight", i.bits_per_weight},
          {"disk_bytes", i.disk_bytes},     {"experts", i.experts},
          {"tokenizer_digest", i.tokenizer_digest}, {"chat_template_digest", i.chat_template_digest}};
}

ModelInfo read_info(const JsonReader& r) {
  return {r.str("architecture"),
          r.flag("quantized"),
          static_cast<int>(r.count("bits")),
          static_cast<int>(r.count("group_size")),
          r.count("params"),
          r.num("bits_per_weight"),
          r.count("disk_bytes"),
          r.count("experts"),
          r.opt_str("tokenizer_digest").value_or(""),  // schema 3
          r.opt_str("chat_template_digest").value_or("")};
}

ojson harness_json(const HarnessResult& h) {
  return {{"suite_seconds", h.suite_seconds},
          {"model_seconds", h.model_seconds},
          {"harness_seconds", h.harness_seconds},
          {"overhead_pct", h.overhead_pct()}};
}

HarnessResult read_harness(const JsonReader& r) {
  return {r.num("suite_seconds"), r.num("model_seconds"), r.num("harness_seconds")};
}

// --- the plan's prediction next to the measurement -----------------------------------------------

// The predicted totals, the bound and the ratios are derived, written for readers and not read back.
ojson plan_json(const ModelResult& m) {
  if (!m.plan) return nullptr;
  const PlanPrediction& p = *m.plan;
  const PlanVsMeasured v = plan_vs_measured(m);
  return {{"origin", p.origin},
          {"bits", p.bits},
          {"group_size", p.group_size},
          {"context", p.context},
          {"prefill_batch", p.prefill_batch},
          {"threads", p.threads},
          {"tensor_bytes", p.tensor_bytes},
          {"header_bytes", p.header_bytes},
          {"disk_bytes", p.disk_bytes()},
          {"kv_cache_bytes", p.kv_cache_bytes},
          {"scratch_bytes", p.scratch_bytes},
          {"memory_bytes", p.memory_bytes()},
          {"bytes_per_token", p.bytes_per_token},
          {"bandwidth_gb_per_s", p.bandwidth_gb_per_s},
          {"decode_tokens_per_second_bound", p.decode_tps_bound()},
          {"measured_over_predicted",
           {{"disk", v.disk_ratio}, {"memory", v.memory_ratio}, {"decode_fraction_of_bound", v.decode_fraction_of_bound}}}};
}

PlanPrediction read_plan(const JsonReader& r) {
  PlanPrediction p;
  p.origin = r.str("origin");
  p.bits = static_cast<int>(r.count("bits"));
  p.group_size = static_cast<int>(r.count("group_size"));
  p.context = r.count("context");
  p.prefill_batch = r.count("prefill_batch");
  p.threads = r.count("threads");
  p.tensor_bytes = r.count("tensor_bytes");
  p.header_bytes = r.count("header_bytes");
  p.kv_cache_bytes = r.count("kv_cache_bytes");
  p.scratch_bytes = r.count("scratch_bytes");
  p.bytes_per_token = r.count("bytes_per_token");
  p.bandwidth_gb_per_s = r.num("bandwidth_gb_per_s");
  return p;
}

// --- comparisons and settings -----------------------------------------------------------------------

ojson criteria_level_json(const CriteriaLevel& l) {
  return {{"accuracy_min_pct", or_null(l.accuracy_min_pct)},
          {"disk_smaller_pct", or_null(l.disk_smaller_pct)},
          {"memory_less_pct", or_null(l.memory_less_pct)},
          {"speed_ratio", or_null(l.speed_ratio)}};
}

CriteriaLevel read_criteria_level(const JsonReader& r) {
  return {r.opt_num("accuracy_min_pct"), r.opt_num("disk_smaller_pct"), r.opt_num("memory_less_pct"),
          r.opt_num("speed_ratio")};
}

ojson paired_json(const PairedAccuracy& p) {
  return {{"n", p.n},
          {"both_right", p.both_right},
          {"both_wrong", p.both_wrong},
          {"lost", p.lost},
          {"gained", p.gained},
          {"difference_pct", p.difference_pct},
          {"mcnemar_p", p.mcnemar_p},
          {"min_detectable_difference_pct", p.min_detectable_pct}};
}

PairedAccuracy read_paired(const JsonReader& r) {
  return {r.count("n"),      r.count("both_right"),   r.count("both_wrong"), r.count("lost"),
          r.count("gained"), r.num("difference_pct"), r.num("mcnemar_p"),    r.num("min_detectable_difference_pct")};
}

template <typename Enum, size_t N>
Enum enum_named(const JsonReader& r, std::string_view key, const std::string& value, const Enum (&values)[N],
                std::string_view (*name)(Enum)) {
  for (Enum e : values)
    if (name(e) == value) return e;
  r.fail(key, fmt::format("unknown value '{}'", value));
}

constexpr Level kLevels[] = {Level::kOptimal, Level::kMinimumViable};
constexpr Verdict kVerdicts[] = {Verdict::kOptimal, Verdict::kMinimumViable, Verdict::kFailure};
constexpr NextStep kSteps[] = {NextStep::kSwitch,          NextStep::kKeepBaseline,
                               NextStep::kTry7Bit,         NextStep::kTrySmallerBase,
                               NextStep::kPruneExperts,    NextStep::kTryLargerGroupOrFewerBits,
                               NextStep::kGrowSuite,       NextStep::kTryMixedPlan,
                               NextStep::kPinRouters,      NextStep::kTryMoreBits,
                               NextStep::kRepeatSpeedRuns};
constexpr Relation kRelations[] = {Relation::kNotApplicable, Relation::kWorse, Relation::kNotWorse,
                                   Relation::kCannotTell};
constexpr Problem kProblems[] = {Problem::kNone, Problem::kSuite, Problem::kAccuracy, Problem::kSize,
                                 Problem::kSpeed};

ojson check_json(const CriterionCheck& k) {
  ojson j = {{"level", level_name(k.level)}, {"rule", k.rule},     {"value", k.value},
             {"threshold", k.threshold},     {"passed", k.passed}, {"text", k.text}};
  if (!k.measured) j["measured"] = false;
  if (!k.passed) {
    j["relation"] = relation_name(k.relation);
    j["baseline_fails"] = k.baseline_fails;
    j["cause"] = k.cause;
  }
  return j;
}

CriterionCheck read_check(const JsonReader& k) {
  CriterionCheck c{enum_named(k, "level", k.str("level"), kLevels, level_name), k.str("rule"), k.num("value"),
                   k.num("threshold"), k.flag("passed"), k.opt_flag("measured").value_or(true), k.str("text"),
                   Relation::kNotApplicable, false, ""};
  if (const auto relation = k.opt_str("relation"))
    c.relation = enum_named(k, "relation", *relation, kRelations, relation_name);
  c.baseline_fails = k.opt_flag("baseline_fails").value_or(false);
  c.cause = k.opt_str("cause").value_or("");
  return c;
}

ojson suite_need_json(const SuiteNeed& n) {
  return {{"drop_pct", n.drop_pct}, {"discordance_pct", n.discordance_pct},
          {"baseline_accuracy_pct", n.baseline_accuracy_pct}, {"queries", n.queries}, {"note", n.note}};
}

SuiteNeed read_suite_need(const JsonReader& r) {
  return {r.num("drop_pct"), r.num("discordance_pct"), r.num("baseline_accuracy_pct"), r.count("queries"),
          r.str("note")};
}

ojson option_json(const NextOption& o) {
  return {{"step", next_step_name(o.step)}, {"command", o.command}, {"prediction", o.prediction},
          {"evidence", o.evidence}};
}

NextOption read_option(const JsonReader& r) {
  return {enum_named(r, "step", r.str("step"), kSteps, next_step_name), r.str("command"), r.str("prediction"),
          r.str("evidence")};
}

ojson comparison_json(const Comparison& c) {
  ojson checks = ojson::array(), steps = ojson::array(), problems = ojson::array(), options = ojson::array();
  for (const CriterionCheck& k : c.checks) checks.push_back(check_json(k));
  for (NextStep s : c.next_steps) steps.push_back(next_step_name(s));
  for (Problem p : c.problems) problems.push_back(problem_name(p));
  for (const NextOption& o : c.options) options.push_back(option_json(o));
  return {{"baseline", c.baseline},
          {"candidate", c.candidate},
          {"disk_smaller_pct", c.disk_smaller_pct},
          {"memory_less_pct", c.memory_less_pct},
          {"speed_ratio", c.speed_ratio},
          {"accuracy", paired_json(c.paired)},
          {"checks", checks},
          {"verdict", verdict_name(c.verdict)},
          {"failing", c.failing},
          {"next_steps", steps},
          {"advice", c.advice},
          {"warnings", c.warnings},
          {"problems", problems},
          {"suite_need", suite_need_json(c.suite_need)},
          {"options", options}};
}

Comparison read_comparison(const JsonReader& r) {
  Comparison c;
  c.baseline = r.str("baseline");
  c.candidate = r.str("candidate");
  c.disk_smaller_pct = r.num("disk_smaller_pct");
  c.memory_less_pct = r.num("memory_less_pct");
  c.speed_ratio = r.num("speed_ratio");
  c.paired = read_paired(r.object("accuracy"));
  for (const JsonReader& k : r.array("checks")) c.checks.push_back(read_check(k));
  c.verdict = enum_named(r, "verdict", r.str("verdict"), kVerdicts, verdict_name);
  c.failing = r.strings("failing");
  for (const JsonReader& step : r.array("next_steps"))
    c.next_steps.push_back(enum_named(step, "", step.as_str(), kSteps, next_step_name));
  c.advice = r.str("advice");
  c.warnings = r.strings("warnings");
  // Added in quantlab.bench/3; older files have none.
  if (r.has("problems"))
    for (const JsonReader& p : r.array("problems"))
      c.problems.push_back(enum_named(p, "", p.as_str(), kProblems, problem_name));
  if (r.has("suite_need")) c.suite_need = read_suite_need(r.object("suite_need"));
  if (r.has("options"))
    for (const JsonReader& o : r.array("options")) c.options.push_back(read_option(o));
  return c;
}

ojson settings_json(const BenchSettings& s) {
  return {{"suite", s.suite},
          {"suite_queries", s.suite_queries},
          {"tools", s.tools},
          {"max_tokens", s.max_tokens},
          {"runs", s.runs},
          {"threads", s.threads},
          {"thinking", s.thinking},
          {"cold", s.cold},
          {"baseline", s.baseline},
          {"criteria",
           {{"source", s.criteria.source},
            {"optimal", criteria_level_json(s.criteria.optimal)},
            {"minimum_viable", criteria_level_json(s.criteria.minimum_viable)}}}};
}

BenchSettings read_settings(const JsonReader& r) {
  BenchSettings s;
  s.suite = r.str("suite");
  s.suite_queries = r.count("suite_queries");
  s.tools = r.str("tools");
  s.max_tokens = r.count("max_tokens");
  s.runs = r.count("runs");
  s.threads = r.count("threads");
  s.thinking = r.flag("thinking");
  s.cold = r.flag("cold");
  s.baseline = r.str("baseline");
  const JsonReader c = r.object("criteria");
  s.criteria.source = c.str("source");
  s.criteria.optimal = read_criteria_level(c.object("optimal"));
  s.criteria.minimum_viable = read_criteria_level(c.object("minimum_viable"));
  return s;
}

ModelResult read_model(const JsonReader& r) {
  ModelResult m;
  m.name = r.str("name");
  m.dir = r.str("dir");
  if (r.has("compute")) m.compute = r.str("compute");  // absent before the int8 path: exact
  m.ok = r.str("status") == "ok";
  if (!m.ok) {
    m.error = r.str("error");
    return m;
  }
  m.info = read_info(r.object("model"));
  m.load = read_load(r.object("load"));
  m.memory = read_memory(r.object("memory"));
  m.speed = read_speed(r.object("speed"));
  m.accuracy = read_accuracy(r.object("accuracy"));
  for (const JsonReader& q : r.array("queries")) m.queries.push_back(read_query(q));
  m.harness = read_harness(r.object("harness"));
  // Absent in files written before schema 2 (and in their reused sweep results): no plan, no warning.
  if (r.has("plan")) m.plan = read_plan(r.object("plan"));
  if (r.has("plan_warning")) m.plan_warning = r.str("plan_warning");
  return m;
}

}  // namespace

ojson to_json(const ModelResult& r) {
  ojson j = {{"name", r.name}, {"dir", r.dir}, {"compute", r.compute}, {"status", r.ok ? "ok" : "failed"}};
  if (!r.ok) {
    j["error"] = r.error;
    return j;
  }
  j["model"] = info_json(r.info);
  j["load"] = load_json(r.load);
  j["memory"] = memory_json(r.memory);
  j["speed"] = speed_json(r.speed);
  j["accuracy"] = accuracy_json(r.accuracy);
  ojson queries = ojson::array();
  for (const QueryResult& q : r.queries) queries.push_back(query_json(q));
  j["queries"] = std::move(queries);
  j["harness"] = harness_json(r.harness);
  j["plan"] = plan_json(r);
  j["plan_warning"] = r.plan_warning;
  return j;
}

ojson to_json(const BenchResults& r) {
  ojson models = ojson::array(), comparisons = ojson::array();
  for (const ModelResult& m : r.models) models.push_back(to_json(m));
  for (const Comparison& c : r.comparisons) comparisons.push_back(comparison_json(c));
  return {{"schema", r.schema},
          {"quantlab_version", r.quantlab_version},
          {"created_utc", r.created_utc},
          {"machine",
           {{"cpu", r.machine.cpu},
            {"simd_target", r.machine.simd_target},
            {"threads", r.machine.threads},
            {"bandwidth_gb_per_s", r.machine.bandwidth_gb_per_s},
            {"bandwidth_source", r.machine.bandwidth_source}}},
          {"settings", settings_json(r.settings)},
          {"models", models},
          {"comparisons", comparisons},
          {"timing", {{"total_seconds", r.total_seconds}, {"workers_seconds", r.workers_seconds}}}};
}

ModelResult model_result_from_json(const ojson& j, const std::string& source) {
  return read_model(JsonReader(j, source));
}

BenchResults bench_results_from_json(const ojson& j, const std::string& source) {
  const JsonReader r(j, source);
  BenchResults b;
  b.schema = r.str("schema");
  const bool v1 = b.schema == kBenchSchemaIdV1;
  if (b.schema != kBenchSchemaId && b.schema != kBenchSchemaIdV2 && !v1)
    r.fail("schema", fmt::format("expected '{}' (or '{}', '{}'), got '{}'", kBenchSchemaId, kBenchSchemaIdV2,
                                 kBenchSchemaIdV1, b.schema));
  b.quantlab_version = r.str("quantlab_version");
  b.created_utc = r.str("created_utc");
  const JsonReader m = r.object("machine");
  b.machine.cpu = m.str("cpu");
  b.machine.simd_target = m.str("simd_target");
  b.machine.threads = m.count("threads");
  if (!v1) {
    b.machine.bandwidth_gb_per_s = m.num("bandwidth_gb_per_s");
    b.machine.bandwidth_source = m.str("bandwidth_source");
  }
  b.schema = std::string(kBenchSchemaId);  // read into the current structs: written back as the current schema
  b.settings = read_settings(r.object("settings"));
  for (const JsonReader& model : r.array("models")) b.models.push_back(read_model(model));
  for (const JsonReader& c : r.array("comparisons")) b.comparisons.push_back(read_comparison(c));
  const JsonReader t = r.object("timing");
  b.total_seconds = t.num("total_seconds");
  b.workers_seconds = t.num("workers_seconds");
  return b;
}

}  // namespace quantlab::eval
