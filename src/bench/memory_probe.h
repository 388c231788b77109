// The memory a process holds, from /proc/self/status (Linux), for benchmark reports.
#pragma once

#include <cstdint>

namespace quantlab::bench {

struct ProcessMemory {
  uint64_t peak_rss = 0;  // VmHWM (or getrusage ru_maxrss where /proc is missing)
  uint64_t rss = 0;       // VmRSS
  uint64_t rss_file = 0;  // RssFile: file-backed pages (mapped weights, the binary)
  uint64_t rss_anon = 0;  // RssAnon: heap, KV cache, scratch
};

ProcessMemory read_process_memory();

}  // namespace quantlab::bench
