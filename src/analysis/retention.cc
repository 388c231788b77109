#include "analysis/retention.h"

#include <fmt/format.h>

#include <filesystem>

#include "analysis/retention_report.h"
#include "core/error.h"
#include "io/output_dir.h"
#include "quant/fuse.h"

namespace quantlab::analysis {

namespace fs = std::filesystem;

namespace {

// The outputs need a fused model to run: with only an adapter, it is fused into the work area.
OutputRetention analyze_outputs(const RetentionOptions& o, const io::AtomicOutputDir& out, ThreadPool& pool) {
  OutputRetentionOptions oo;
  oo.base_dir = o.base_dir;
  oo.fused_dir = o.fused_dir;
  if (!o.adapter_dir.empty()) {
    oo.fused_dir = out.file("fused");
    quant::FuseOptions fo;
    fo.show_progress = o.show_progress;
    quant::fuse_adapter(o.base_dir, o.adapter_dir, oo.fused_dir, fo, pool);
  }
  oo.suite_path = o.suite_path;
  oo.tools_path = o.tools_path;
  oo.bits = o.bits;
  oo.group_size = o.group_size;
  oo.max_tokens = o.max_tokens;
  oo.work_dir = out.file("models");
  oo.keep_models = o.keep_models;
  oo.show_progress = o.show_progress;
  OutputRetention r = analyze_output_retention(oo, pool);
  if (!o.keep_models) {
    fs::remove_all(out.file("models"));
    if (!o.adapter_dir.empty()) fs::remove_all(oo.fused_dir);
  }
  return r;
}

}  // namespace

RetentionRun run_retention(const RetentionOptions& o, ThreadPool& pool) {
  if (o.adapter_dir.empty() == o.fused_dir.empty())
    fail(ErrorKind::kUsage, "give exactly one of --adapter and --fused");
  if (!o.tools_path.empty() && o.suite_path.empty()) fail(ErrorKind::kUsage, "--tools goes with --suite");
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
  if (!o.suite_path.empty()) run.outputs = analyze_outputs(o, out, pool);
  const RetentionInputs in{o.base_dir, o.adapter_dir.empty() ? o.fused_dir : o.adapter_dir};
  const OutputRetention* outputs = run.outputs ? &*run.outputs : nullptr;
  run.json = retention_json(in, run.weights, outputs);
  io::write_file_atomically(out.file("retention.json"), run.json.dump(2) + "\n");
  io::write_file_atomically(out.file("retention.md"), retention_markdown(in, run.weights, outputs));
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
  s += fmt::format("report: {}/retention.md, {}/retention.json\n", out_dir, out_dir);
  return s;
}

}  // namespace quantlab::analysis
