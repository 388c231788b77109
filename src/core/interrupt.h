// Stopping cleanly on SIGINT and SIGTERM, and on an input file truncated under a read (issue 19): the temporary outputs being written (hidden
// output directories, files written through a temporary sibling) are removed, a one-line message says
// what happened, and the process exits with 128 + the signal number (130 for SIGINT, 143 for SIGTERM),
// as shells report a process killed by that signal.
//
// How: install_interrupt_cleanup() blocks both signals in the calling thread — and so in every thread it
// starts later, which inherit the mask — and starts one watcher thread that waits for them with
// sigwait(). The cleanup then runs as ordinary code in that thread (std::filesystem is not
// async-signal-safe, so a signal handler could not do it), and _exit() ends the process with every
// worker thread. SIGKILL cannot be caught: what it leaves behind is recognised by the next run on the
// same output (io/output_dir.h). A bus error inside a mapped input that shrank (core/input_guard.h) is
// handed to the same watcher, which names the file, removes the temporaries and exits 5 (an I/O error).
#pragma once

#include <functional>
#include <string>

namespace quantlab {

// Call once, first thing in main(), before any thread starts. Later calls do nothing.
void install_interrupt_cleanup();

// For a long-running service (`serve`): the first SIGINT or SIGTERM calls `handler` (in the watcher
// thread) instead of cleaning up and exiting, so the service can finish its work in flight and return
// normally; a second one exits as usual. Pass an empty function to go back to the default.
void set_graceful_stop(std::function<void(const char* signal_name)> handler);

// Paths removed (recursively) when an interrupt arrives; thread-safe. Unregistering a path that was
// never registered does nothing.
void register_temporary(const std::string& path);
void unregister_temporary(const std::string& path);

// Test hook for the kill tests (issue 19): with QUANTLAB_TEST_STOP_AT=POINT:N:SIGNAL in the environment,
// the N-th pass (counted from 1, over all threads) through stop_point("POINT") sends SIGNAL (KILL, TERM
// or STOP) to this process, so a test stops a run at an exact place ("tensor": after a tensor's bytes
// are written; "commit": before the finished output is renamed into place; "forward": a forward pass of
// the engine begins) instead of by timing. After
// sending SIGTERM the calling thread waits for the cleanup to end the process; after SIGSTOP it goes on
// once the test has changed what it wanted (an input file) and sent SIGCONT. Without the variable
// (always, outside tests) a call costs one load of a cached flag.
void stop_point(const char* point);

// Registers `path` for as long as it lives.
class TemporaryPath {
 public:
  explicit TemporaryPath(std::string path) : path_(std::move(path)) { register_temporary(path_); }
  ~TemporaryPath() { unregister_temporary(path_); }
  TemporaryPath(const TemporaryPath&) = delete;
  TemporaryPath& operator=(const TemporaryPath&) = delete;

 private:
  std::string path_;
};

}  // namespace quantlab
