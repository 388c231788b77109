#include "core/input_guard.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>

#include "core/error.h"
#include "core/mapped_file.h"
#include "test_support.h"

namespace quantlab {
namespace {

namespace fs = std::filesystem;

// The message verify_inputs_unchanged() throws, or nothing.
std::optional<std::string> change_reported() {
  try {
    verify_inputs_unchanged();
    return std::nullopt;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIo);
    return std::string(e.what());
  }
}

void write(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// Every change is undone before the map closes: a change seen at close is remembered for the rest of the
// process, and would fail every later test here.
TEST(InputGuard, AMappedFileIsWatchedUntilItCloses) {
  testing::TempDir tmp;
  const fs::path path = tmp / "weights.bin";
  write(path, std::string(10000, 'a'));
  const auto written = fs::last_write_time(path);
  uintptr_t begin = 0;
  {
    const MappedFile file(path.string());
    begin = reinterpret_cast<uintptr_t>(file.data());
    EXPECT_TRUE(address_in_watched_input(begin));
    EXPECT_TRUE(address_in_watched_input(begin + 9999));
    EXPECT_FALSE(address_in_watched_input(begin + 10000));
    EXPECT_EQ(change_reported(), std::nullopt);

    fs::last_write_time(path, written - std::chrono::hours(1));
    auto change = change_reported();
    ASSERT_TRUE(change.has_value());
    EXPECT_NE(change->find(path.string() + ": rewritten while being read"), std::string::npos) << *change;
    EXPECT_NE(change->find("the output was not written"), std::string::npos) << *change;

    fs::resize_file(path, 4000);
    change = change_reported();
    ASSERT_TRUE(change.has_value());
    EXPECT_NE(change->find("changed size while being read (10000 bytes when opened, 4000 now)"), std::string::npos)
        << *change;
    EXPECT_NE(describe_input_fault(begin + 5000).find(path.string() + ": truncated while being read (byte 5000 is gone; "
                                                                     "10000 bytes when opened, 4000 now)"),
              std::string::npos);

    write(path, std::string(10000, 'a'));
    fs::last_write_time(path, written);
    EXPECT_EQ(change_reported(), std::nullopt);
  }
  EXPECT_FALSE(address_in_watched_input(begin)) << "a closed map is still in the bus-error table";
  EXPECT_EQ(change_reported(), std::nullopt);
}

TEST(InputGuard, AReplacedFileIsSeenEvenWithTheSameSizeAndTime) {
  testing::TempDir tmp;
  const fs::path path = tmp / "weights.bin";
  write(path, std::string(100, 'a'));
  const MappedFile file(path.string());
  fs::rename(path, tmp / "aside.bin");
  write(path, std::string(100, 'a'));
  fs::last_write_time(path, fs::last_write_time(tmp / "aside.bin"));
  const auto change = change_reported();
  ASSERT_TRUE(change.has_value());
  EXPECT_NE(change->find(path.string() + ": replaced by another file while being read"), std::string::npos) << *change;
  fs::remove(path);
  fs::rename(tmp / "aside.bin", path);  // the original back in place: unchanged at close
  EXPECT_EQ(change_reported(), std::nullopt);
}

}  // namespace
}  // namespace quantlab
