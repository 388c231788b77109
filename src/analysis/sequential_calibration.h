// Sequential calibration (issue 21): the statistics GPTQ and delta rounding need, recorded for every
// Linear with every module before it already rounded as the quantizer will round it, as GPTQ's own
// implementation calibrates ("true sequential"). Plain calibration records every module's inputs on the
// float model, so each module's rounding compensates its own error but not the errors of the layers
// before it, which reach it through changed inputs; with the earlier modules rounded, a module's
// second moments are those of the inputs it will see in the quantized model.
//
// Layer-streamed: the calibration sequences (prompts + the float model's greedy replies, and text chunks,
// exactly as `calibrate` forms them) are run one decoder layer at a time on a stored residual stream
// ([tokens, hidden] float32 per sequence). Per layer four stages, in the order the inputs depend on each
// other: q/k/v (attention input), o (attention output), gate/up or the router and the experts' gate/up
// (MLP input), down (expert down); after each stage its modules are rounded in memory (analysis/affine_rows.h,
// the quantizer's arithmetic: the same codes the file will hold) and swapped into the engine, and after
// the last the layer is run once more to move the stream on. A quantized embedding is rounded first; the
// output head's input is the final stream, normed. Cost: five one-layer passes per layer (about five
// forward passes of the whole model) plus the roundings; memory: the stream, one layer's rounded copies
// and the statistics.
//
// The statistics depend on the plan (widths, methods): they are the ones for this quantization only.
// Recording the quantized model's own calibration on the same token sequences gives the same statistics
// (every module's inputs depend only on the modules before it): the test of this file.
#pragma once

#include "analysis/calibration.h"
#include "core/thread_pool.h"
#include "quant/plan.h"
#include "quant/rounding.h"

namespace quantlab::analysis {

// `options`: the model and the calibration inputs (second moments are always recorded); `plan`: the
// quantization of that model; `rounding`: the method and its settings (its statistics are ignored).
CalibrationStats calibrate_sequential(const CalibrationOptions& options, const quant::QuantPlan& plan,
                                      const quant::RoundingOptions& rounding, ThreadPool& pool);

// `settings` with the statistics recorded sequentially for the plan `plan_options` makes of
// options.model_dir (any statistics it held replaced; RoundingOptions::sequential set): what
// `quantize --sequential` rounds with, with or without a budget.
quant::RoundingOptions with_sequential_statistics(const CalibrationOptions& options,
                                                  const quant::PlanOptions& plan_options,
                                                  quant::RoundingOptions settings, ThreadPool& pool);

}  // namespace quantlab::analysis
