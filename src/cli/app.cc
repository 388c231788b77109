#include "cli/app.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "quantlab/version.h"

namespace quantlab::cli {

int run(int argc, char** argv) {
  CLI::App app{
      "quantlab: quantize fused LoRA models to MLX-compatible N-bit files, run them on CPU, and "
      "measure what each bit width keeps of the fine-tune."};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("quantlab ") + kQuantlabVersion);
  register_quantize(app);
  register_dequantize(app);
  register_inspect(app);
  register_machine(app);
  register_fuse(app);
  register_tokenize(app);
  register_chat_template(app);
  register_generate(app);
  register_serve(app);
  register_logits(app);
  register_synth(app);
  register_plan(app);
  register_bench(app);
  register_retention(app);
  register_sweep(app);
  register_calibrate(app);
  register_sensitivity(app);
  register_allocate(app);
  register_divergence(app);
  register_suite_size(app);
  register_experts(app);
  register_prune(app);
  // (subcommands are added here as they land)
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Usage errors look like every other error: one "quantlab: error:" line naming the flag, and the
    // subcommand whose --help explains it.
    std::string command = "quantlab";
    for (const CLI::App* sub = &app; !sub->get_subcommands().empty();) {
      sub = sub->get_subcommands().front();
      command += " " + sub->get_name();
    }
    fmt::print(stderr, "quantlab: error: {}\n(`{} --help` lists the options)\n", e.what(), command);
    return static_cast<int>(ErrorKind::kUsage);
  } catch (const Error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "quantlab: error: {}\n", e.what());
    return e.exit_code();
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "quantlab: error: out of memory\n");
    return static_cast<int>(ErrorKind::kIo);
  } catch (const std::exception& e) {
    fmt::print(stderr, "quantlab: internal error: {}\n", e.what());
    return static_cast<int>(ErrorKind::kInternal);
  }
  return 0;
}

}  // namespace quantlab::cli
