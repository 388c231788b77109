#pragma once

namespace quantlab::cli {

// Parses argv, runs the chosen subcommand and returns the process exit code (see core/error.h):
// 0 success, 2 usage error, 3 invalid input, 4 unsupported input, 5 I/O error, 1 internal error.
int run(int argc, char** argv);

}  // namespace quantlab::cli
