// Inputs that change under a running process (issue 19, core/input_guard.h): a command that writes a
// model is paused at an exact place (QUANTLAB_TEST_STOP_AT=POINT:N:STOP), the test truncates, replaces
// or rewrites its input, and lets it go on. Each case must end with an I/O error (exit 5) naming the
// input, and nothing at the output path, temporary or final. Truncation is tried both on a command that
// streams its input with pread (quantize) and on one that reads it through the memory map (prune), where
// the read past the new end is a bus error turned into the same error.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <functional>

#include "cli_support.h"

namespace quantlab::testing {
namespace {

namespace fs = std::filesystem;

struct Finished {
  int exit_code = -1;
  std::string err;
};

// Runs quantlab ARGS paused at `stop_at` (POINT:N), applies `change` while it is stopped, continues it.
Finished run_changing_input(const std::vector<std::string>& args, const std::string& stop_at, const fs::path& dir,
                            const std::function<void()>& change) {
  const std::string err_path = (dir / "stderr.txt").string();
  setenv("QUANTLAB_TEST_STOP_AT", (stop_at + ":STOP").c_str(), 1);
  const pid_t pid = spawn_quantlab(args, err_path);
  unsetenv("QUANTLAB_TEST_STOP_AT");
  if (pid <= 0) {
    ADD_FAILURE() << "could not start quantlab";
    return {};
  }
  int status = 0;
  waitpid(pid, &status, WUNTRACED);
  const bool stopped = WIFSTOPPED(status);
  EXPECT_TRUE(stopped) << "the run ended before " << stop_at << " (status " << status << "): " << slurp(err_path);
  if (stopped) {
    change();
    kill(pid, SIGCONT);
    waitpid(pid, &status, 0);
  }
  Finished f;
  f.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  f.err = slurp(err_path);
  fs::remove(err_path);
  return f;
}

// A private copy of a fixture model, with its weights dated an hour back so that a rewrite is seen even
// by a file system whose clock ticks coarsely.
fs::path copy_model(const std::string& fixture, const fs::path& to) {
  fs::copy(fixture, to, fs::copy_options::recursive);
  const fs::path weights = to / "model.safetensors";
  fs::last_write_time(weights, fs::last_write_time(weights) - std::chrono::hours(1));
  return weights;
}

void expect_io_error_and_no_output(const Finished& f, const fs::path& weights, const std::string& what,
                                   const fs::path& out) {
  EXPECT_EQ(f.exit_code, 5) << f.err;
  EXPECT_NE(f.err.find("quantlab: error: " + weights.string() + ": " + what), std::string::npos) << f.err;
  EXPECT_FALSE(fs::exists(out)) << "an output was committed from a changed input";
  EXPECT_FALSE(has_temporary(out.parent_path())) << "the unfinished output was left behind";
}

std::vector<std::string> quantize_args(const fs::path& in, const fs::path& out) {
  return {"quantize", in.string(), out.string(), "--bits", "4", "--quiet"};
}

TEST(ChangedInput, AnInputTruncatedWhileStreamedIsAnIoError) {
  TempDir tmp;
  const fs::path weights = copy_model(tool_calling::kFused, tmp / "in");
  const Finished f = run_changing_input(quantize_args(tmp / "in", tmp / "q"), "tensor:1", tmp.path(),
                                        [&] { fs::resize_file(weights, fs::file_size(weights) / 2); });
  // Which check sees it first depends on where the reader thread stood when the process was stopped: a
  // short pread ("truncated while being read") or the size check between tensors ("changed size while
  // being read", what a loaded 2-core machine gave once in ~10 runs). Both are the same I/O error.
  const bool short_read = f.err.find("truncated while being read") != std::string::npos;
  expect_io_error_and_no_output(f, weights, short_read ? "truncated while being read" : "changed size while being read",
                                tmp / "q");
}

TEST(ChangedInput, AMappedInputTruncatedUnderACopyIsAnIoError) {
  TempDir tmp;
  const fs::path weights = copy_model(data_path("tool-calling/moe-fused-strong-f16"), tmp / "in");
  RunResult r = run_quantlab("experts " + shell_quote(tmp / "in") + " --suite " + shell_quote(tool_calling::kSeed5) +
                             " --max-tokens 2 --out " + shell_quote(tmp / "e") + " --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  fs::last_write_time(weights, fs::last_write_time(weights) - std::chrono::hours(1));
  const Finished f = run_changing_input(
      {"prune", tmp / "in", tmp / "p", "--profile", tmp / "e/experts.json",
       "--keep", "4"},
      "tensor:1", tmp.path(), [&] { fs::resize_file(weights, fs::file_size(weights) / 2); });
  // prune hands mapped bytes straight to pwrite, which fails with EFAULT past the new end.
  expect_io_error_and_no_output(f, weights, "changed size while being read", tmp / "p");
}

// The engine reads weights through the map in user space: the read past the new end is a bus error,
// which must become the same I/O error (the SIGBUS path of core/interrupt.h).
TEST(ChangedInput, AnInputTruncatedUnderTheEngineIsAnIoErrorNotACrash) {
  TempDir tmp;
  const fs::path weights = copy_model(tool_calling::kFused, tmp / "in");
  const Finished f = run_changing_input(
      {"generate", tmp / "in", "--prompt", "Hello", "--max-tokens", "4", "--ignore-eos"}, "forward:2", tmp.path(),
      [&] { fs::resize_file(weights, 4096); });
  EXPECT_EQ(f.exit_code, 5) << f.err;
  EXPECT_NE(f.err.find("quantlab: error: " + weights.string() + ": truncated while being read (byte "), std::string::npos)
      << f.err;
  EXPECT_NE(f.err.find("nothing was being written"), std::string::npos) << f.err;
}

TEST(ChangedInput, AnInputReplacedBeforeTheCommitIsAnIoError) {
  TempDir tmp;
  const fs::path weights = copy_model(tool_calling::kFused, tmp / "in");
  const Finished f = run_changing_input(quantize_args(tmp / "in", tmp / "q"), "commit:1", tmp.path(), [&] {
    // What a download tool does: write a new file beside it, rename it over the old one.
    fs::copy_file(weights, tmp / "new.safetensors");
    fs::rename(tmp / "new.safetensors", weights);
  });
  expect_io_error_and_no_output(f, weights, "replaced by another file while being read", tmp / "q");
}

TEST(ChangedInput, AnInputRewrittenInPlaceIsAnIoError) {
  TempDir tmp;
  const fs::path weights = copy_model(tool_calling::kBase, tmp / "in");
  const Finished f = run_changing_input(quantize_args(tmp / "in", tmp / "q"), "tensor:1", tmp.path(), [&] {
    // Same size, the lowest bit of the last float16 value flipped in place: only the modification time
    // tells.
    std::fstream file(weights, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(-2, std::ios::end);
    const char low = static_cast<char>(file.get() ^ 1);
    file.seekp(-2, std::ios::end);
    file.put(low);
  });
  expect_io_error_and_no_output(f, weights, "rewritten while being read", tmp / "q");
}

TEST(ChangedInput, AnUnchangedInputIsNotFlagged) {
  TempDir tmp;
  copy_model(tool_calling::kFused, tmp / "in");
  const Finished f = run_changing_input(quantize_args(tmp / "in", tmp / "q"), "tensor:1", tmp.path(), [] {});
  EXPECT_EQ(f.exit_code, 0) << f.err;
  EXPECT_TRUE(fs::exists(tmp / "q/model.safetensors"));
}

}  // namespace
}  // namespace quantlab::testing
