// The page cache state of a model's files, so that load times can be labelled warm or cold honestly:
// dropping the cache is a request (posix_fadvise DONTNEED drops only clean, unmapped pages), so the
// result is always checked with mincore before a load is called cold.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace quantlab::bench {

// The regular files directly inside `dir` (weights, configs, tokenizer), sorted.
std::vector<std::string> model_files(const std::string& dir);

struct CacheState {
  uint64_t pages = 0;
  uint64_t resident = 0;
  double fraction() const { return pages ? static_cast<double>(resident) / static_cast<double>(pages) : 1.0; }
};

// Pages of the files resident in memory now (mmap + mincore; the mapping is read-only and untouched).
// Files that cannot be opened are skipped.
CacheState page_cache_state(const std::vector<std::string>& files);

// Asks the kernel to drop the files' pages (fdatasync then POSIX_FADV_DONTNEED). Returns false when a
// request failed; check page_cache_state() for what actually happened.
bool drop_page_cache(const std::vector<std::string>& files);

// Reads every file once so that its pages are cached.
void warm_page_cache(const std::vector<std::string>& files);

// "warm" (>= 99 % resident), "cold" (<= 1 %), otherwise "partial".
std::string cache_state_label(double resident_fraction);

}  // namespace quantlab::bench
