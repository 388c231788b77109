// The past-the-cache writer (io/direct_file.h): bytes placed in any order from several threads land
// where they belong, the file gets its exact size (not a multiple of the block), missing bytes are an
// error, and a file that cannot be created is an I/O error naming it.
#include "io/direct_file.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include "core/error.h"
#include "test_support.h"

namespace quantlab::io {
namespace {

using testing::TempDir;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(DirectFile, PiecesInAnyOrderFromTwoThreadsMakeTheFile) {
  TempDir tmp;
  const std::string path = tmp / "out.bin";
  const uint64_t size = 3 * DirectFile::kBlock + 12345;
  std::mt19937 rng(11);
  std::string expected(size, '\0');
  for (char& c : expected) c = static_cast<char>(rng());
  // Pieces of 1..40000 bytes, shuffled, split between two threads.
  std::vector<std::pair<uint64_t, uint64_t>> pieces;
  for (uint64_t at = 0; at < size;) {
    const uint64_t n = std::min<uint64_t>(size - at, 1 + rng() % 40000);
    pieces.emplace_back(at, n);
    at += n;
  }
  std::shuffle(pieces.begin(), pieces.end(), rng);
  auto file = DirectFile::create(path, size);
  if (!file) GTEST_SKIP() << "no O_DIRECT on the file system of " << path;
  const auto bytes = reinterpret_cast<const uint8_t*>(expected.data());
  auto half = [&](size_t first) {
    for (size_t i = first; i < pieces.size(); i += 2) file->write(pieces[i].first, {bytes + pieces[i].first, pieces[i].second});
  };
  std::thread other(half, 1);
  half(0);
  other.join();
  file->finish();
  EXPECT_EQ(slurp(path), expected);
}

TEST(DirectFile, AByteNeverWrittenIsAnError) {
  TempDir tmp;
  const std::string path = tmp / "out.bin";
  auto file = DirectFile::create(path, 2 * DirectFile::kBlock + 10);
  if (!file) GTEST_SKIP() << "no O_DIRECT on the file system of " << path;
  const std::vector<uint8_t> zeros(2 * DirectFile::kBlock + 10, 0);
  file->write(0, {zeros.data(), DirectFile::kBlock});
  file->write(DirectFile::kBlock + 1, {zeros.data(), DirectFile::kBlock + 9});  // byte kBlock missing
  try {
    file->finish();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("never completed"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(DirectFile, AFileThatCannotBeCreatedIsAnIoErrorNamingIt) {
  TempDir tmp;
  const std::string path = (std::filesystem::path(tmp / "missing-dir") / "out.bin").string();
  try {
    DirectFile::create(path, 100);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIo);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace quantlab::io
