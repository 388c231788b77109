// `quantlab serve` under load (issue 17, docs/BENCHMARKS.md): the server runs as its own process (the
// built quantlab binary) on the bundled fused model; this program is its clients, over loopback.
//   1. a serial pass over the suite records each query's reply (the reference);
//   2. --clients concurrent clients send --per-client requests each (the suite's queries in turn): every
//      reply must equal the reference, every request must be answered (no 503 while the clients are
//      fewer than --max-queue);
//   3. --requests serial requests: the server's RSS after the first 100 and after all of them;
//   4. latency percentiles, and the server's own overhead per request: client latency minus the
//      engine's time (the X-Quantlab-Engine-Seconds header), against the engine time of a query.
//
//   serve_bench [--model DIR] [--suite Q] [--clients 8] [--per-client 25] [--requests 1000]
//               [--max-queue 16] [--threads 2] [--max-tokens 64]
#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <fmt/format.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include "bench/machine_probe.h"

extern char** environ;

namespace {

using ojson = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint64_t rss_of(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with("VmRSS:")) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

struct ServerProcess {
  pid_t pid = -1;
  int port = -1;
  ServerProcess(const std::string& model, int max_queue, int threads) {
    const std::string out = "/tmp/serve_bench.out", err = "/tmp/serve_bench.err";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const std::string exe = std::string(QUANTLAB_SOURCE_DIR) + "/build/bin/quantlab";
    std::vector<std::string> args = {exe, "serve", model, "--port", "0", "--max-queue", std::to_string(max_queue),
                                     "--threads", std::to_string(threads), "--ctx", "2048"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), environ) != 0) throw std::runtime_error("spawn");
    posix_spawn_file_actions_destroy(&actions);
    const std::regex line(R"(http://127\.0\.0\.1:(\d+)/v1)");
    for (int i = 0; i < 600 && port < 0; ++i) {
      std::smatch m;
      const std::string text = slurp(out);
      if (std::regex_search(text, m, line)) port = std::stoi(m[1]);
      else std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (port < 0) throw std::runtime_error("the server did not start: " + slurp(err));
  }
  ~ServerProcess() {
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
  }
};

struct Answer {
  int status = 0;
  std::string reply;  // the message, dumped
  double latency = 0, engine = 0, prepare = 0;
};

Answer ask(httplib::Client& c, const std::string& body) {
  Answer a;
  const auto start = Clock::now();
  const httplib::Result r = c.Post("/v1/chat/completions", body, "application/json");
  a.latency = std::chrono::duration<double>(Clock::now() - start).count();
  if (!r) return a;
  a.status = r->status;
  if (r->status != 200) return a;
  a.engine = std::atof(r->get_header_value("X-Quantlab-Engine-Seconds").c_str());
  a.prepare = std::atof(r->get_header_value("X-Quantlab-Prepare-Seconds").c_str());
  ojson message = ojson::parse(r->body)["choices"][0]["message"];
  if (message.contains("tool_calls"))  // call ids carry the request's id
    for (ojson& call : message["tool_calls"]) call.erase("id");
  a.reply = message.dump();
  return a;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5)];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("quantlab serve under load");
  std::string model = std::string(QUANTLAB_SOURCE_DIR) + "/tests/data/tool-calling/dense-fused-strong-f16";
  std::string suite = std::string(QUANTLAB_SOURCE_DIR) + "/tests/data/tool-calling/queries/dev40.jsonl";
  std::string tools_path = std::string(QUANTLAB_SOURCE_DIR) + "/tests/data/tool-calling/tools.json";
  int clients = 8, per_client = 25, requests = 1000, max_queue = 16, threads = 2, max_tokens = 64;
  app.add_option("--model", model);
  app.add_option("--suite", suite);
  app.add_option("--clients", clients);
  app.add_option("--per-client", per_client);
  app.add_option("--requests", requests);
  app.add_option("--max-queue", max_queue);
  app.add_option("--threads", threads);
  app.add_option("--max-tokens", max_tokens);
  CLI11_PARSE(app, argc, argv);

  const quantlab::eval::MachineInfo machine = quantlab::bench::describe_machine(static_cast<size_t>(threads), 0);
  const ojson tools = ojson::parse(slurp(tools_path));
  std::vector<std::string> bodies;
  {
    std::ifstream in(suite);
    std::string line;
    while (std::getline(in, line))
      if (!line.empty())
        bodies.push_back(ojson{{"messages", ojson::parse(line)["messages"]}, {"tools", tools}, {"temperature", 0},
                               {"max_tokens", max_tokens}}.dump());
  }
  ServerProcess server(model, max_queue, threads);
  httplib::Client serial("127.0.0.1", server.port);
  serial.set_read_timeout(300, 0);
  serial.set_keep_alive(true);  // as OpenAI clients do, and without Nagle (as Node and Python clients)
  serial.set_tcp_nodelay(true);

  std::vector<std::string> reference;
  std::vector<double> engine_seconds, overhead, prepare;
  for (const std::string& b : bodies) {
    const Answer a = ask(serial, b);
    reference.push_back(a.reply);
    engine_seconds.push_back(a.engine);
  }

  std::vector<int> statuses;
  std::vector<double> latencies;
  size_t wrong = 0;
  std::mutex mutex;
  const auto load_start = Clock::now();
  std::vector<std::thread> pool;
  for (int c = 0; c < clients; ++c)
    pool.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", server.port);
      client.set_read_timeout(300, 0);
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);
      for (int i = 0; i < per_client; ++i) {
        const size_t q = static_cast<size_t>(c * per_client + i) % bodies.size();
        const Answer a = ask(client, bodies[q]);
        std::lock_guard<std::mutex> lock(mutex);
        statuses.push_back(a.status);
        latencies.push_back(a.latency);
        if (a.status == 200 && a.reply != reference[q]) ++wrong;
      }
    });
  for (std::thread& t : pool) t.join();
  const double load_seconds = std::chrono::duration<double>(Clock::now() - load_start).count();
  const size_t answered = static_cast<size_t>(std::count(statuses.begin(), statuses.end(), 200));
  const size_t refused = static_cast<size_t>(std::count(statuses.begin(), statuses.end(), 503));

  uint64_t rss_100 = 0, rss_end = 0;
  std::vector<double> serial_latency, serial_engine;
  for (int i = 0; i < requests; ++i) {
    const Answer a = ask(serial, bodies[static_cast<size_t>(i) % bodies.size()]);
    serial_latency.push_back(a.latency);
    overhead.push_back(a.latency - a.engine - a.prepare);
    prepare.push_back(a.prepare);
    serial_engine.push_back(a.engine);
    if (i + 1 == 100) rss_100 = rss_of(server.pid);
  }
  rss_end = rss_of(server.pid);

  const double engine_median = percentile(serial_engine, 0.5);
  const double overhead_median = percentile(overhead, 0.5);
  fmt::print("machine: {} ({}), {} threads, bandwidth {:.1f} GB/s ({})\n", machine.cpu, machine.simd_target, threads,
             machine.bandwidth_gb_per_s, machine.bandwidth_source);
  fmt::print("load: {} clients x {} requests in {:.1f} s: {} answered, {} refused (503), {} other, {} replies differing "
             "from the serial reference\n",
             clients, per_client, load_seconds, answered, refused, statuses.size() - answered - refused, wrong);
  fmt::print("latency under load: p50 {:.1f} ms, p99 {:.1f} ms\n", 1e3 * percentile(latencies, 0.5),
             1e3 * percentile(latencies, 0.99));
  fmt::print("serial ({} requests): p50 {:.1f} ms, p99 {:.1f} ms; engine time per query (median) {:.2f} ms\n", requests,
             1e3 * percentile(serial_latency, 0.5), 1e3 * percentile(serial_latency, 0.99), 1e3 * engine_median);
  fmt::print("chat template + tokenizer per request (the in-process bench pays it too): median {:.3f} ms\n",
             1e3 * percentile(prepare, 0.5));
  fmt::print("server overhead per request (latency - engine - template/tokenizer: HTTP, JSON, queue, detokenize): "
             "median {:.3f} ms, p99 {:.3f} ms = {:.2f} % of a query's engine time\n",
             1e3 * overhead_median, 1e3 * percentile(overhead, 0.99), 100 * overhead_median / engine_median);
  fmt::print("server RSS: {:.1f} MB after 100 requests, {:.1f} MB after {} ({:+.2f} %)\n", rss_100 / 1e6, rss_end / 1e6,
             requests, 100.0 * (static_cast<double>(rss_end) - static_cast<double>(rss_100)) / static_cast<double>(rss_100));
  const bool ok = answered == statuses.size() && wrong == 0 &&
                  static_cast<double>(rss_end) <= 1.05 * static_cast<double>(rss_100);
  fmt::print("{}\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}
