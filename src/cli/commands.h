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


}  // namespace quantlab::cli
