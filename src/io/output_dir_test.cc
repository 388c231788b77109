// Temporaries left by a killed run (issue 19): `.NAME.tmp-PID` siblings whose process is gone are
// removed when the next run on the same output starts; a live process's, another output's and this
// process's own are left alone.
#include "io/output_dir.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "test_support.h"

namespace quantlab::io {
namespace {

namespace fs = std::filesystem;

pid_t a_finished_process() {
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  int status = 0;
  waitpid(pid, &status, 0);
  return pid;
}

TEST(AtomicOutputDir, RemovesOnlyTheTemporariesOfGoneProcesses) {
  testing::TempDir tmp;
  const pid_t gone = a_finished_process();
  const auto make = [&](const std::string& name) {
    const fs::path p = tmp / name;
    fs::create_directories(p / "sub");
    return p;
  };
  const fs::path stale = make(".out.tmp-" + std::to_string(gone));
  const fs::path stale_old = make(".out.tmp-" + std::to_string(gone) + ".old");
  const fs::path live = make(".out.tmp-" + std::to_string(getppid()));
  const fs::path other_output = make(".other.tmp-" + std::to_string(gone));
  const fs::path not_a_pid = make(".out.tmp-12x");
  {
    AtomicOutputDir dir(tmp / "out", false);
    EXPECT_TRUE(fs::exists(dir.temp_path()));
  }
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_FALSE(fs::exists(stale_old));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(other_output));
  EXPECT_TRUE(fs::exists(not_a_pid));
  EXPECT_FALSE(fs::exists(tmp / "out"));  // never committed, and its own temporary is gone too
}

}  // namespace
}  // namespace quantlab::io
