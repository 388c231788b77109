// `bench --model NAME=URL[#MODEL_ID][@DIR]`: the suite run against an OpenAI-compatible server, scored
// exactly as a local model's replies are (the reply's tool calls turned back into the model's own
// text format). Latency per query and the server's token counts give the speed; disk size and the
// plan's memory come from DIR when given, and are otherwise left unmeasured (0), which the verdict
// reports as "not measured" rather than as passed.
#pragma once

#include <string>

#include "bench/worker.h"
#include "eval/report_schema.h"

namespace quantlab::bench {

// Never throws: a server that cannot be reached or refuses gives a ModelResult with ok = false.
// `common` supplies the suite, tools, max_tokens, runs and thinking. The API key comes from
// OPENAI_API_KEY (or QUANTLAB_API_KEY).
eval::ModelResult measure_remote(const std::string& name, const std::string& spec, const WorkerSpec& common);

}  // namespace quantlab::bench
