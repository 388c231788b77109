// Process isolation for benchmarks: each model is measured in a child process (a fresh address
// space, its own peak RSS), started from this very binary so that parent and child agree on the code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace quantlab::bench {

// CLOCK_MONOTONIC in nanoseconds: the same clock in every process of the machine, so a child can
// measure from the moment its parent spawned it.
int64_t monotonic_ns();
double seconds_between(int64_t from_ns, int64_t to_ns);

// The path of the running executable (/proc/self/exe resolved).
std::string self_executable();

struct ChildExit {
  bool exited = false;  // exited normally (else killed by a signal)
  int code = 0;         // exit code, or the signal number
  bool ok() const { return exited && code == 0; }
  std::string describe() const;  // "exit code 3", "killed by signal 9 (Killed)"
};

// Runs `exe` with `args` (argv[1..]) and waits for it. The child inherits stdin, stdout and stderr.
// Throws Error(kIo) when it cannot be started.
ChildExit run_child(const std::string& exe, const std::vector<std::string>& args);

}  // namespace quantlab::bench
