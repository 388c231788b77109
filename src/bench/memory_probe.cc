#include "bench/memory_probe.h"

#include <sys/resource.h>

#include <fstream>
#include <sstream>
#include <string>

namespace quantlab::bench {

namespace {

// "VmHWM:	  12345 kB" -> bytes.
bool parse_kb_line(const std::string& line, const char* key, uint64_t& out) {
  const std::string prefix = std::string(key) + ":";
  if (line.compare(0, prefix.size(), prefix) != 0) return false;
  std::istringstream in(line.substr(prefix.size()));
  uint64_t kb = 0;
  if (in >> kb) out = kb * 1024;
  return true;
}

}  // namespace

ProcessMemory read_process_memory() {
  ProcessMemory m;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    parse_kb_line(line, "VmHWM", m.peak_rss) || parse_kb_line(line, "VmRSS", m.rss) ||
        parse_kb_line(line, "RssFile", m.rss_file) || parse_kb_line(line, "RssAnon", m.rss_anon);
  }
  if (m.peak_rss == 0) {
    rusage usage{};
    if (getrusage(RUSAGE_SELF, &usage) == 0) m.peak_rss = static_cast<uint64_t>(usage.ru_maxrss) * 1024;  // kB on Linux
  }
  return m;
}

}  // namespace quantlab::bench
