#include "core/input_guard.h"

#include <sys/stat.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"

namespace quantlab {

FileIdentity identity_of(const struct stat& st) {
  return {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size),
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

namespace {

struct WatchedInput {
  std::string path;
  FileIdentity identity;
  uintptr_t begin = 0;
  size_t size = 0;
  int slot = -1;  // index in the signal handler's table, -1 when it was full or the file is empty
};

// The bus-error handler cannot take a mutex or walk a std::map: it scans this fixed table of address
// ranges instead (begin == 0 marks a free slot). 4096 mappings is far beyond any model's shard count; a
// mapping that finds the table full is still checked for changes, only a bus error inside it stays a
// crash.
constexpr int kSlots = 4096;
struct Slot {
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};
};
std::array<Slot, kSlots> g_slots;

struct Registry {
  std::mutex mutex;
  std::map<uint64_t, WatchedInput> inputs;
  uint64_t next_handle = 1;
  std::vector<std::string> changed;  // changes noticed when a watched input was closed
};

Registry& registry() {
  static Registry r;
  return r;
}

int claim_slot(uintptr_t begin, size_t size) {
  if (size == 0) return -1;
  for (int i = 0; i < kSlots; ++i) {
    if (g_slots[i].begin.load(std::memory_order_relaxed) != 0) continue;
    g_slots[i].end.store(begin + size, std::memory_order_relaxed);
    g_slots[i].begin.store(begin, std::memory_order_release);  // published last: the range is whole
    return i;
  }
  return -1;
}

// What happened to `input` since it was opened, or nothing.
std::optional<std::string> change_of(const WatchedInput& input) {
  struct stat st {};
  if (::stat(input.path.c_str(), &st) != 0)
    return fmt::format("{}: removed while being read ({})", input.path, std::strerror(errno));
  const FileIdentity now = identity_of(st);
  const FileIdentity& then = input.identity;
  if (now.device != then.device || now.inode != then.inode)
    return fmt::format("{}: replaced by another file while being read", input.path);
  if (now.size != then.size)
    return fmt::format("{}: changed size while being read ({} bytes when opened, {} now)", input.path, then.size,
                       now.size);
  if (now.mtime_ns != then.mtime_ns)
    return fmt::format("{}: rewritten while being read (its modification time changed)", input.path);
  return std::nullopt;
}

}  // namespace


uint64_t watch_input(const std::string& path, const FileIdentity& identity, const uint8_t* data, size_t size) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data);
  const uint64_t handle = r.next_handle++;
  r.inputs.emplace(handle, WatchedInput{path, identity, begin, size, claim_slot(begin, size)});
  return handle;
}

void unwatch_input(uint64_t handle) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  const auto it = r.inputs.find(handle);
  if (it == r.inputs.end()) return;
  if (it->second.slot >= 0) g_slots[it->second.slot].begin.store(0, std::memory_order_release);
  try {
    // A file gone from its path by now was read whole and consistent (a temporary output renamed into
    // place, a cache entry removed): only a file still there can have been rewritten under the reads.
    struct stat st {};
    if (::stat(it->second.path.c_str(), &st) == 0)
      if (auto change = change_of(it->second)) r.changed.push_back(std::move(*change));
  } catch (...) {  // out of memory while formatting: the check is lost, the close must not throw
  }
  r.inputs.erase(it);
}

void verify_inputs_unchanged() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::optional<std::string> change;
  if (!r.changed.empty()) change = r.changed.front();
  for (auto it = r.inputs.begin(); !change && it != r.inputs.end(); ++it) change = change_of(it->second);
  if (change) fail(ErrorKind::kIo, "{}; the output was not written (run again once the file is complete)", *change);
}

bool address_in_watched_input(uintptr_t address) {
  for (const Slot& slot : g_slots) {
    const uintptr_t begin = slot.begin.load(std::memory_order_acquire);
    if (begin != 0 && address >= begin && address < slot.end.load(std::memory_order_relaxed)) return true;
  }
  return false;
}

std::string describe_input_fault(uintptr_t address) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (const auto& [handle, input] : r.inputs) {
    if (address < input.begin || address >= input.begin + input.size) continue;
    struct stat st {};
    const std::string now = ::stat(input.path.c_str(), &st) == 0 ? fmt::format("{} now", st.st_size) : "removed now";
    return fmt::format("{}: truncated while being read (byte {} is gone; {} bytes when opened, {})", input.path,
                       address - input.begin, input.identity.size, now);
  }
  return fmt::format("an input file was truncated while being read (bus error at {:#x})", address);
}

}  // namespace quantlab
