#include "core/interrupt.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
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

// QUANTLAB_TEST_STOP_AT, parsed once: "tensor:3:KILL" -> point "tensor", pass 3, SIGKILL.
struct StopAt {
  std::string point;
  long pass = 0;
  int signal = 0;
  std::atomic<long> seen{0};
};

StopAt* parse_stop_at() {
  const char* spec = std::getenv("QUANTLAB_TEST_STOP_AT");
  if (spec == nullptr || *spec == '\0') return nullptr;
  static StopAt stop;
  const std::string text = spec;
  const size_t a = text.find(':'), b = text.rfind(':');
  if (a != std::string::npos && b != a) {
    stop.point = text.substr(0, a);
    stop.pass = std::atol(text.substr(a + 1, b - a - 1).c_str());
    const std::string sig = text.substr(b + 1);
    stop.signal = sig == "KILL" ? SIGKILL : sig == "TERM" ? SIGTERM : 0;
  }
  if (stop.pass < 1 || stop.signal == 0) {
    std::fprintf(stderr, "quantlab: error: QUANTLAB_TEST_STOP_AT=%s: expected POINT:N:KILL|TERM\n", spec);
    std::exit(2);
  }
  return &stop;
}

StopAt* stop_at() {
  static StopAt* const stop = parse_stop_at();
  return stop;
}

}  // namespace

void stop_point(const char* point) {
  StopAt* const stop = stop_at();
  if (stop == nullptr || stop->point != point) return;
  if (stop->seen.fetch_add(1) + 1 != stop->pass) return;
  kill(getpid(), stop->signal);
  // SIGTERM goes to the watcher thread, which removes the temporaries and exits; this thread must not
  // go on and finish the output meanwhile.
  for (;;) pause();
}

void install_interrupt_cleanup() {
  static std::once_flag once;
  std::call_once(once, [] {
    (void)stop_at();  // a malformed test hook is refused before any work starts
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
