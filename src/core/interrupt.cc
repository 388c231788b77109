#include "core/interrupt.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

namespace quantlab {

namespace {

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

std::vector<std::string>& registry() {
  static std::vector<std::string> paths;
  return paths;
}

sigset_t interrupt_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

[[noreturn]] void clean_up_and_exit(int signal) {
  std::vector<std::string> removed;
  {
    // Held to the end: no path is registered or unregistered while the outputs are removed.
    std::lock_guard<std::mutex> lock(registry_mutex());
    for (const std::string& path : registry()) {
      std::error_code ec;
      // A worker may still be adding files: retry until the directory is gone (or stays put).
      for (int attempt = 0; attempt < 5 && std::filesystem::exists(path, ec); ++attempt)
        std::filesystem::remove_all(path, ec);
      removed.push_back(path);
    }
    const char* name = signal == SIGINT ? "SIGINT" : "SIGTERM";
    if (removed.empty())
      std::fprintf(stderr, "\nquantlab: interrupted by %s; nothing was being written\n", name);
    for (const std::string& path : removed)
      std::fprintf(stderr, "\nquantlab: interrupted by %s; removed the unfinished output %s\n", name, path.c_str());
    std::fflush(stderr);
    _exit(128 + signal);
  }
}

}  // namespace

void install_interrupt_cleanup() {
  static std::once_flag once;
  std::call_once(once, [] {
    const sigset_t set = interrupt_signals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::thread([set] {
      int signal = 0;
      while (sigwait(&set, &signal) != 0) {
      }
      clean_up_and_exit(signal);
    }).detach();
  });
}

void register_temporary(const std::string& path) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry().push_back(path);
}

void unregister_temporary(const std::string& path) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  auto& paths = registry();
  const auto it = std::find(paths.rbegin(), paths.rend(), path);
  if (it != paths.rend()) paths.erase(std::next(it).base());
}

}  // namespace quantlab
