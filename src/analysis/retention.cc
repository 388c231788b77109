#include "analysis/retention.h"

#include <fmt/format.h>

#include <filesystem>

#include "analysis/calibration.h"
#include "analysis/retention_report.h"
#include "analysis/sequential_calibration.h"
#include "analysis/vocabulary_prior.h"
#include "core/error.h"
#include "io/output_dir.h"
#include "quant/fuse.h"
#include "quant/quantizer.h"
#include "quant/rounding.h"

namespace quantlab::analysis {

namespace fs = std::filesystem;

namespace {

// The outputs and the calibrated methods need a fused model to run: with only an adapter, it is
// fused into the work area (once).
const std::string& fused_model(const RetentionOptions& o, const io::AtomicOutputDir& out, std::string& made,
                               ThreadPool& pool) {
  if (!o.fused_dir.empty()) return o.fused_dir;
  if (made.empty()) {
    made = out.file("fused");
    quant::FuseOptions fo;
    fo.show_progress = o.show_progress;
    quant::fuse_adapter(o.base_dir, o.adapter_dir, made, fo, pool);
  }
  return made;
}

OutputRetentionOptions output_options(const RetentionOptions& o, const std::string& fused_dir, const io::AtomicOutputDir& out) {
  OutputRetentionOptions oo;
  oo.base_dir = o.base_dir;
  oo.fused_dir = fused_dir;
  oo.suite_path = o.suite_path;
  oo.tools_path = o.tools_path;
  oo.bits = o.bits;
  oo.group_size = o.group_size;
  oo.max_tokens = o.max_tokens;
  oo.work_dir = out.file("models");
  oo.keep_models = o.keep_models;
  oo.show_progress = o.show_progress;
  return oo;
}

void check_methods(const RetentionOptions& o) {
  for (const std::string& m : o.methods)
    if (quant::parse_rounding_method(m) == quant::RoundingMethod::kRtn)  // Error(kUsage) naming the choices
      fail(ErrorKind::kUsage, "--method: rtn is always measured; name the others (gptq, delta)");
  if (!o.methods.empty() && o.suite_path.empty() && o.calibration_suite.empty())
    fail(ErrorKind::kUsage, "--method {} needs calibration inputs: --calibration SUITE.jsonl or --suite", o.methods.front());
  if (!o.calibration_suite.empty() && o.methods.empty()) fail(ErrorKind::kUsage, "--calibration goes with --method");
  if (o.sequential && o.methods.empty()) fail(ErrorKind::kUsage, "--sequential goes with --method gptq|delta");
}

CalibrationOptions calibration_options(const RetentionOptions& o, const std::string& fused_dir) {
  CalibrationOptions c;
  c.model_dir = fused_dir;
  c.suite_path = o.calibration_suite.empty() ? o.suite_path : o.calibration_suite;
  c.tools_path = o.tools_path;
  c.max_tokens = o.calibration_tokens;
  c.second_moments = true;
  c.show_progress = o.show_progress;
  return c;
}

// The second moments GPTQ and delta need, calibrated once on the fused model.
quant::RoundingOptions method_rounding(const RetentionOptions& o, const std::string& fused_dir, ThreadPool& pool) {
  quant::RoundingOptions rounding;
  rounding.base_dir = o.base_dir;
  add_vocabulary_prior(rounding, fused_dir, pool);
  if (o.sequential) return rounding;  // recorded per width and method (method_point)
  CalibrationStats stats = calibrate(calibration_options(o, fused_dir), pool);
  take_rounding_statistics(stats, rounding);
  return rounding;
}

// One width rounded with one method into `dir` (what `quantize --method` writes), measured from its
// stored weights.
MethodRetention method_point(const RetentionOptions& o, const std::string& fused_dir, const std::string& method,
                             int bits, const quant::RoundingOptions& rounding, const std::string& dir,
                             ThreadPool& pool) {
  quant::QuantizeOptions q;
  q.plan.bits = bits;
  q.plan.group_size = o.group_size;
  q.show_progress = o.show_progress;
  q.rounding = rounding;
  q.rounding.method = quant::parse_rounding_method(method);
  if (o.sequential) q.rounding = with_sequential_statistics(calibration_options(o, fused_dir), q.plan, q.rounding, pool);
  quant::quantize_model(fused_dir, dir, q, pool);
  WeightRetentionOptions wo;
  wo.base_dir = o.base_dir;
  wo.fused_dir = fused_dir;
  wo.bits = {bits};
  wo.group_size = o.group_size;
  wo.quantized_dir = dir;
  wo.show_progress = false;
  return {o.sequential ? method + "+seq" : method, bits, analyze_weight_retention(wo, pool).overall.front(),
          std::nullopt};
}

// Every width rounded with each method into OUT/models/q<b>-g<G>-<method>, measured from its stored
// weights and, with a suite, from its outputs. Round-to-nearest's points come from the main analysis,
// so the table puts all methods side by side.
std::vector<MethodRetention> analyze_methods(const RetentionOptions& o, const RetentionRun& run,
                                             const std::string& fused_dir, const io::AtomicOutputDir& out,
                                             ThreadPool& pool) {
  std::vector<MethodRetention> points;
  for (size_t w = 0; w < o.bits.size(); ++w) {
    MethodRetention& p = points.emplace_back(MethodRetention{"rtn", o.bits[w], run.weights.overall[w], std::nullopt});
    if (run.outputs) p.outputs = run.outputs->quantized[w];
  }
  const quant::RoundingOptions rounding = method_rounding(o, fused_dir, pool);
  std::vector<std::pair<std::string, std::string>> models;
  for (const std::string& method : o.methods)
    for (int bits : o.bits) {
      const std::string dir = (fs::path(out.file("models")) / fmt::format("q{}-g{}-{}", bits, o.group_size, method)).string();
      points.push_back(method_point(o, fused_dir, method, bits, rounding, dir, pool));
      models.emplace_back(fmt::format("{}-bit {}", bits, points.back().method), dir);
    }
  if (!o.suite_path.empty()) {
    const OutputRetention compared = compare_outputs(output_options(o, fused_dir, out), models, pool);
    for (size_t i = 0; i < models.size(); ++i) points[o.bits.size() + i].outputs = compared.quantized[i];
  }
  return points;
}

}  // namespace

RetentionRun run_retention(const RetentionOptions& o, ThreadPool& pool) {
  if (o.adapter_dir.empty() == o.fused_dir.empty())
    fail(ErrorKind::kUsage, "give exactly one of --adapter and --fused");
  if (!o.tools_path.empty() && o.suite_path.empty() && o.calibration_suite.empty())
    fail(ErrorKind::kUsage, "--tools goes with --suite");
  check_methods(o);
  WeightRetentionOptions wo;
  wo.base_dir = o.base_dir;
  wo.adapter_dir = o.adapter_dir;
  wo.fused_dir = o.fused_dir;
  wo.bits = o.bits;
  wo.group_size = o.group_size;
  wo.show_progress = o.show_progress;
  io::check_output_not_input(o.base_dir, o.out_dir);
  io::AtomicOutputDir out(o.out_dir, o.overwrite);
  RetentionRun run;
  run.weights = analyze_weight_retention(wo, pool);
  std::string made_fused;
  if (!o.suite_path.empty())
    run.outputs = analyze_output_retention(output_options(o, fused_model(o, out, made_fused, pool), out), pool);
  if (!o.methods.empty()) run.methods = analyze_methods(o, run, fused_model(o, out, made_fused, pool), out, pool);
  if (!o.keep_models) {
    fs::remove_all(out.file("models"));
    if (!made_fused.empty()) fs::remove_all(made_fused);
  }
  const RetentionInputs in{o.base_dir, o.adapter_dir.empty() ? o.fused_dir : o.adapter_dir};
  const OutputRetention* outputs = run.outputs ? &*run.outputs : nullptr;
  run.json = retention_json(in, run.weights, outputs);
  std::string md = retention_markdown(in, run.weights, outputs);
  if (!run.methods.empty()) {
    run.json["methods"] = methods_json(run.methods);
    md += methods_markdown(run.methods);
  }
  io::write_file_atomically(out.file("retention.json"), run.json.dump(2) + "\n");
  io::write_file_atomically(out.file("retention.md"), md);
  out.commit();
  return run;
}

std::string retention_summary_text(const RetentionRun& run, const std::string& out_dir) {
  const WeightRetention& w = run.weights;
  const OutputRetention* o = run.outputs ? &*run.outputs : nullptr;
  std::string s = fmt::format("{:>5}  {:>7}  {:>8}  {:>8}  {:>9}", "bits", "cosine", "kept", "erased", "ΔW/step");
  if (o) s += fmt::format("  {:>10}  {:>8}", "KL(reply)", "retained");
  s += "\n";
  for (size_t i = 0; i < w.bits.size(); ++i) {
    const auto& t = w.overall[i];
    s += fmt::format("{:>5}  {:>7.3f}  {:>7.1f}%  {:>7.1f}%  {:>9.3f}", w.bits[i], t.cosine(), 100 * t.kept(),
                     100 * t.erased_share(), t.delta_in_steps());
    if (o) s += fmt::format("  {:>10.4f}  {:>7.1f}%", o->quantized[i].kl_reply, 100 * o->quantized[i].retention_reply);
    s += "\n";
  }
  const auto lost = layers_lost_first(w);
  if (!lost.empty() && lost.front().loss_bits > 0)
    s += fmt::format("lost first: {} (cosine below 0.707 from {} bits down)\n",
                     lost.front().layer < 0 ? "embeddings/head" : fmt::format("layer {}", lost.front().layer),
                     lost.front().loss_bits);
  if (o)
    s += fmt::format("base: KL(reply) {:.4f}; weights vs outputs agree across widths: Spearman {:.3f}\n",
                     o->base.kl_reply, weight_output_agreement(w, *o));
  if (!run.methods.empty()) {
    s += fmt::format("\n{:>5}  {:>6}  {:>7}  {:>8}", "bits", "method", "cosine", "kept");
    if (o) s += fmt::format("  {:>10}  {:>8}  {:>7}", "KL(reply)", "retained", "flipped");
    s += "\n";
    for (const auto& p : run.methods) {
      s += fmt::format("{:>5}  {:>6}  {:>7.3f}  {:>7.1f}%", p.bits, p.method, p.weights.cosine(), 100 * p.weights.kept());
      if (p.outputs)
        s += fmt::format("  {:>10.4f}  {:>7.1f}%  {:>7}", p.outputs->kl_reply, 100 * p.outputs->retention_reply,
                         p.outputs->flipped);
      s += "\n";
    }
  }
  s += fmt::format("report: {}/retention.md, {}/retention.json\n", out_dir, out_dir);
  return s;
}

}  // namespace quantlab::analysis
