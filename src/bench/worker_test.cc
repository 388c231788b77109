// A bench worker opens its model directory once (issue 14): config.json and every safetensors header
// are parsed exactly once for the whole run (load, suite, model summary and the plan's prediction).
#include "bench/worker.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "io/safetensors.h"
#include "test_support.h"

namespace quantlab::bench {
namespace {

using namespace quantlab::testing::tool_calling;

size_t safetensors_files(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    n += e.path().extension() == ".safetensors" && e.path().filename() != "reference.safetensors";
  return n;
}

TEST(Worker, ReadsConfigAndEachHeaderOnce) {
  WorkerSpec spec;
  spec.name = "fused";
  spec.model_dir = kFused;
  spec.suite = kSeed5;
  spec.tools = kTools;
  spec.max_tokens = 2;
  spec.threads = 2;
  const io::ReadCounters before = io::read_counters();
  const eval::ModelResult r = run_worker(spec);
  const io::ReadCounters after = io::read_counters();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.queries.size(), 5u);
  EXPECT_TRUE(r.plan.has_value()) << r.plan_warning;
  EXPECT_EQ(after.config_files - before.config_files, 1u);
  EXPECT_EQ(after.safetensors_headers - before.safetensors_headers, safetensors_files(kFused));
}

}  // namespace
}  // namespace quantlab::bench
