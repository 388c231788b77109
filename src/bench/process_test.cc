// Worker processes, the page-cache probe and the memory probe.
#include "bench/process.h"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "bench/memory_probe.h"
#include "bench/page_cache.h"
#include "bench/worker.h"
#include "core/error.h"
#include "test_support.h"

namespace quantlab::bench {
namespace {

using quantlab::testing::TempDir;

TEST(Process, ExitCodesAndSignalsAreReported) {
  EXPECT_TRUE(run_child("/bin/sh", {"-c", "exit 0"}).ok());
  const ChildExit three = run_child("/bin/sh", {"-c", "exit 3"});
  EXPECT_TRUE(three.exited);
  EXPECT_EQ(three.code, 3);
  EXPECT_EQ(three.describe(), "exit code 3");
  const ChildExit killed = run_child("/bin/sh", {"-c", "kill -9 $$"});
  EXPECT_FALSE(killed.exited);
  EXPECT_EQ(killed.code, SIGKILL);
  EXPECT_NE(killed.describe().find("killed by signal 9"), std::string::npos);
  EXPECT_THROW(run_child("/nonexistent/program", {}), Error);
}

TEST(Process, ClockAndSelfPath) {
  const int64_t before = monotonic_ns();
  EXPECT_TRUE(run_child("/bin/sh", {"-c", "sleep 0.05"}).ok());
  EXPECT_GE(seconds_between(before, monotonic_ns()), 0.05);
  EXPECT_NEAR(seconds_between(before, before + 1'500'000'000), 1.5, 1e-12);
  EXPECT_EQ(std::filesystem::path(self_executable()).filename(), "test_bench");
}

TEST(PageCache, StateOfFilesAndLabels) {
  TempDir tmp;
  const std::string path = tmp / "weights.bin";
  std::ofstream(path, std::ios::binary) << std::string(1 << 20, 'x');
  const std::vector<std::string> files = model_files(tmp.path());
  ASSERT_EQ(files, std::vector<std::string>{path});
  warm_page_cache(files);
  const CacheState warm = page_cache_state(files);
  EXPECT_EQ(warm.pages, (1u << 20) / static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)));
  EXPECT_EQ(warm.resident, warm.pages);  // just written and read: all cached
  EXPECT_EQ(cache_state_label(warm.fraction()), "warm");
  // Dropping is a request the kernel may refuse (tmpfs keeps pages); whatever happened is measured.
  EXPECT_TRUE(drop_page_cache(files));
  EXPECT_LE(page_cache_state(files).resident, warm.pages);
  EXPECT_EQ(cache_state_label(0.0), "cold");
  EXPECT_EQ(cache_state_label(0.5), "partial");
  EXPECT_TRUE(model_files(tmp / "missing").empty());
}

TEST(MemoryProbe, SeesAnAllocationTouched) {
  const ProcessMemory before = read_process_memory();
  EXPECT_GT(before.peak_rss, 0u);
  EXPECT_GE(before.peak_rss, before.rss);
  std::vector<char> block(64 << 20, 1);  // 64 MiB, every page written
  const ProcessMemory after = read_process_memory();
  EXPECT_GE(after.peak_rss, before.rss + (60u << 20)) << static_cast<int>(block[12345]);
  EXPECT_GE(after.rss_anon, before.rss_anon + (60u << 20));
}

TEST(WorkerSpec, JsonRoundTripAndErrors) {
  WorkerSpec s;
  s.name = "q6";
  s.model_dir = "/m/q6";
  s.suite = "s.jsonl";
  s.tools = "t.json";
  s.max_tokens = 24;
  s.runs = 3;
  s.threads = 2;
  s.thinking = true;
  s.load_only = true;
  s.spawn_ns = 123456789012345;
  s.resident_fraction_before = 0.25;
  const WorkerSpec back = worker_spec_from_json(to_json(s).dump());
  EXPECT_EQ(to_json(back), to_json(s));
  EXPECT_EQ(back.spawn_ns, 123456789012345);
  try {
    worker_spec_from_json("{\"name\": \"x\"}");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find("model_dir: missing"), std::string::npos) << e.what();
  }
  EXPECT_THROW(worker_spec_from_json("not json"), Error);
}

TEST(Worker, AModelThatCannotLoadBecomesAFailedResult) {
  TempDir tmp;
  std::ofstream(tmp / "config.json") << "{\"model_type\": ";
  WorkerSpec s;
  s.name = "broken";
  s.model_dir = tmp.path();
  const eval::ModelResult r = run_worker_reporting_failure(s);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.name, "broken");
  EXPECT_NE(r.error.find("config.json"), std::string::npos) << r.error;
}

}  // namespace
}  // namespace quantlab::bench
