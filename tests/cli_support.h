// Runs the real quantlab binary and captures its exit code and output, for tests of the command-line
// contract (exit codes, messages, no partial output).
#pragma once

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.h"

extern char** environ;

namespace quantlab::testing {

// Exit codes of the CLI contract (docs/cli.md), spelled out rather than taken from core/error.h, so
// that a change of the enum shows up here as a broken contract.
constexpr int kUsage = 2, kInvalid = 3, kUnsupported = 4;

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Whether `dir` holds an output's hidden temporary (`.NAME.tmp-PID`, io/output_dir.h): what a killed
// run leaves behind.
inline bool has_temporary(const std::filesystem::path& dir) {
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().filename().string().find(".tmp-") != std::string::npos) return true;
  return false;
}

// args is appended verbatim (quote paths with shell_quote).
inline RunResult run_quantlab(const std::string& args) {
  TempDir io;
  const std::string cmd = std::string(QUANTLAB_BINARY) + " " + args + " >" + shell_quote(io / "out") +
                          " 2>" + shell_quote(io / "err") + " </dev/null";
  const int status = std::system(cmd.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  r.out = slurp(io / "out");
  r.err = slurp(io / "err");
  return r;
}

// Starts quantlab ARGS in the background (no shell), stderr to `err_path` (stdout to `out_path`);
// returns its PID, or -1 when it could not be started.
inline pid_t spawn_quantlab(const std::vector<std::string>& args, const std::string& err_path,
                            const std::string& out_path = "/dev/null") {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv{const_cast<char*>(QUANTLAB_BINARY)};
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, QUANTLAB_BINARY, &actions, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

}  // namespace quantlab::testing
