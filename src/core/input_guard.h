// Input files that change under a running process (issue 19). quantlab reads weights in place from a
// memory map (and streams them with pread), so a file truncated, rewritten or replaced while a command
// runs would otherwise give a bus error (a read past the new end of a mapped file) or, worse, an output
// built from a mix of old and new bytes. Every mapped input is watched:
// - its identity (device, inode, size, modification time) is recorded when it is opened and compared
//   again before any output is moved into place (verify_inputs_unchanged) and when it is closed, so a
//   replaced, truncated or rewritten input fails the command with an I/O error naming it, and the
//   unfinished output is removed instead of committed;
// - a bus error inside a watched mapping (the file shrank under a read) is turned into the same I/O
//   error, exit 5, by the interrupt watcher (core/interrupt.h): the faulting thread only records the
//   address, which the handler can do safely, and the watcher — ordinary code — names the file, removes
//   the temporary outputs and exits.
// Not detectable: a rewrite that keeps the size and restores the modification time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <sys/stat.h>

namespace quantlab {

// What says "the same file, unchanged" on POSIX file systems.
struct FileIdentity {
  uint64_t device = 0;
  uint64_t inode = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileIdentity&) const = default;
};

FileIdentity identity_of(const struct stat& st);

// Starts watching `path` (opened as `identity`, mapped at [data, data + size) when size > 0); returns
// the handle to pass to unwatch_input. Thread-safe.
uint64_t watch_input(const std::string& path, const FileIdentity& identity, const uint8_t* data, size_t size);
// Stops watching; if the file changed while it was open (and is still at its path: one renamed or
// removed after the reads is not a torn read), the change is remembered and reported by the next
// verify_inputs_unchanged(). Never throws.
void unwatch_input(uint64_t handle);

// Throws Error(kIo) naming the first input that changed since it was opened (watched now, or closed
// after changing). Called before an output is moved into place.
void verify_inputs_unchanged();

// Async-signal-safe: whether `address` lies inside a watched mapping.
bool address_in_watched_input(uintptr_t address);
// "PATH: truncated while being read (...)" for a fault at `address` (not signal-safe: the watcher's).
std::string describe_input_fault(uintptr_t address);

}  // namespace quantlab
