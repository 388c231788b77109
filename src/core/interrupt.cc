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
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "core/input_guard.h"

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

// SIGUSR1 is how a bus-error handler hands the fault over to the watcher thread.
constexpr int kInputFaultSignal = SIGUSR1;

sigset_t watched_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, kInputFaultSignal);
  return set;
}

// `headline` is printed first; then one line per unfinished output removed (with `why`), or one saying
// that nothing was being written.
[[noreturn]] void clean_up_and_exit(const std::string& headline, const char* why, int exit_code) {
  // Held to the end: no path is registered or unregistered while the outputs are removed.
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::fputc('\n', stderr);  // off a progress bar's line
  if (!headline.empty()) std::fprintf(stderr, "%s\n", headline.c_str());
  for (const std::string& path : registry()) {
    std::error_code ec;
    // A worker may still be adding files: retry until the directory is gone (or stays put).
    for (int attempt = 0; attempt < 5 && std::filesystem::exists(path, ec); ++attempt)
      std::filesystem::remove_all(path, ec);
    std::fprintf(stderr, "quantlab: %s; removed the unfinished output %s\n", why, path.c_str());
  }
  if (registry().empty()) std::fprintf(stderr, "quantlab: %s; nothing was being written\n", why);
  std::fflush(stderr);
  _exit(exit_code);
}

// The address of a bus error inside a watched input (core/input_guard.h), 0 while there was none.
std::atomic<uintptr_t> g_input_fault{0};

// Runs in the faulting thread, so it may only do async-signal-safe things: record the address, wake the
// watcher, and wait for it to end the process (returning would retry the read and fault again).
void on_bus_error(int, siginfo_t* info, void*) {
  const auto address = reinterpret_cast<uintptr_t>(info->si_addr);
  if (!address_in_watched_input(address)) {
    signal(SIGBUS, SIG_DFL);  // not a file that shrank: the retried access dies as it always did
    return;
  }
  uintptr_t none = 0;
  g_input_fault.compare_exchange_strong(none, address);
  kill(getpid(), kInputFaultSignal);
  for (;;) pause();
}

void install_bus_error_handler() {
  struct sigaction action {};
  action.sa_sigaction = on_bus_error;
  action.sa_flags = SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  sigaction(SIGBUS, &action, nullptr);
}

std::mutex& graceful_mutex() {
  static std::mutex m;
  return m;
}

std::function<void(const char*)>& graceful_handler() {
  static std::function<void(const char*)> handler;
  return handler;
}

// The graceful handler, taken out of its slot: it runs once; a second interrupt cleans up and exits.
std::function<void(const char*)> take_graceful_handler() {
  std::lock_guard<std::mutex> lock(graceful_mutex());
  std::function<void(const char*)> handler;
  handler.swap(graceful_handler());
  return handler;
}

// The watcher thread: waits for an interrupt or a handed-over input fault, then cleans up and exits.
[[noreturn]] void watch_signals(sigset_t set) {
  for (;;) {
    int signal = 0;
    if (sigwait(&set, &signal) != 0) continue;
    if (signal == kInputFaultSignal) {
      const uintptr_t fault = g_input_fault.load();
      if (fault == 0) continue;  // a stray SIGUSR1 from outside: not ours
      clean_up_and_exit("quantlab: error: " + describe_input_fault(fault), "stopped by an input error",
                        5);  // ErrorKind::kIo
    }
    const std::string name = signal == SIGINT ? "SIGINT" : "SIGTERM";
    if (const std::function<void(const char*)> handler = take_graceful_handler()) {
      handler(name.c_str());
      continue;
    }
    clean_up_and_exit("", ("interrupted by " + name).c_str(), 128 + signal);
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
    stop.signal = sig == "KILL" ? SIGKILL : sig == "TERM" ? SIGTERM : sig == "STOP" ? SIGSTOP : 0;
  }
  if (stop.pass < 1 || stop.signal == 0) {
    std::fprintf(stderr, "quantlab: error: QUANTLAB_TEST_STOP_AT=%s: expected POINT:N:KILL|TERM|STOP\n", spec);
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
  if (stop->signal == SIGSTOP) return;  // continued by the test (SIGCONT) once it has done its part
  // SIGTERM goes to the watcher thread, which removes the temporaries and exits; this thread must not
  // go on and finish the output meanwhile.
  for (;;) pause();
}

void install_interrupt_cleanup() {
  static std::once_flag once;
  std::call_once(once, [] {
    (void)stop_at();  // a malformed test hook is refused before any work starts
    const sigset_t set = watched_signals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    install_bus_error_handler();
    std::thread([set] { watch_signals(set); }).detach();
  });
}

void set_graceful_stop(std::function<void(const char* signal_name)> handler) {
  std::lock_guard<std::mutex> lock(graceful_mutex());
  graceful_handler() = std::move(handler);
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
