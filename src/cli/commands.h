// Every subcommand registers itself on the root CLI11 app through one of these functions
// (the list in app.cc is the single place that names them all).
#pragma once

namespace CLI {
class App;
}

namespace quantlab::cli {

void register_quantize(CLI::App& app);
void register_dequantize(CLI::App& app);
void register_inspect(CLI::App& app);
void register_machine(CLI::App& app);
void register_fuse(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_chat_template(CLI::App& app);
void register_generate(CLI::App& app);
void register_logits(CLI::App& app);
void register_synth(CLI::App& app);
void register_plan(CLI::App& app);
void register_bench(CLI::App& app);  // also the hidden bench-worker
void register_retention(CLI::App& app);
void register_sweep(CLI::App& app);
void register_calibrate(CLI::App& app);    // cmd_mixed.cc
void register_sensitivity(CLI::App& app);  // cmd_mixed.cc
void register_allocate(CLI::App& app);     // cmd_mixed.cc
void register_divergence(CLI::App& app);
void register_suite_size(CLI::App& app);
void register_experts(CLI::App& app);  // cmd_experts.cc
void register_prune(CLI::App& app);    // cmd_experts.cc
void register_serve(CLI::App& app);


}  // namespace quantlab::cli
