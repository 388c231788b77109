// `quantlab serve` as a process: it prints where it listens, answers, and on SIGTERM finishes the
// request in flight and exits 0; a model it cannot serve is refused before it listens.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <regex>
#include <thread>

#include "cli_support.h"

namespace quantlab::testing {
namespace {

// The port `quantlab serve --port 0` printed, waiting for the line up to `seconds`.
int wait_for_port(const std::string& out_path, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  const std::regex line(R"(http://127\.0\.0\.1:(\d+)/v1)");
  while (std::chrono::steady_clock::now() < deadline) {
    std::smatch m;
    const std::string out = slurp(out_path);
    if (std::regex_search(out, m, line)) return std::stoi(m[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

TEST(ServeCli, SigtermFinishesTheRequestInFlightAndExitsZero) {
  TempDir io;
  const pid_t pid = spawn_quantlab({"serve", tool_calling::kFused, "--port", "0", "--threads", "1", "--ctx", "1024"},
                                   io / "err", io / "out");
  ASSERT_GT(pid, 0);
  const int port = wait_for_port(io / "out", 60);
  ASSERT_GT(port, 0) << slurp(io / "err");
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(120, 0);
  const std::string body =
      R"({"messages": [{"role": "user", "content": "Tell me a long story."}], "max_tokens": 300, "temperature": 0, "stream": true})";
  std::string stream;
  bool signalled = false;
  httplib::Request request;
  request.method = "POST";
  request.path = "/v1/chat/completions";
  request.body = body;
  request.set_header("Content-Type", "application/json");
  request.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    stream.append(data, n);
    if (!signalled) {  // the request is in flight: stop the server now
      kill(pid, SIGTERM);
      signalled = true;
    }
    return true;
  };
  const httplib::Result r = client.send(request);
  ASSERT_TRUE(r) << "the request in flight was cut off: " << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(signalled);
  // The first chunk goes out before the first token is generated: everything after it was generated
  // after the signal.
  EXPECT_TRUE(stream.find("\"finish_reason\":\"stop\"") != std::string::npos ||
              stream.find("\"finish_reason\":\"length\"") != std::string::npos)
      << "the reply did not run to its end";
  EXPECT_GT(std::count(stream.begin(), stream.end(), '\n'), 10) << stream;
  EXPECT_NE(stream.find("data: [DONE]"), std::string::npos);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << slurp(io / "err");
  EXPECT_EQ(WEXITSTATUS(status), 0) << slurp(io / "err");
  EXPECT_NE(slurp(io / "err").find("SIGTERM: finishing the request in flight"), std::string::npos);
}

// A running `quantlab serve MODEL` with its port; stopped (SIGTERM) and reaped on destruction.
class ServeProcess {
 public:
  explicit ServeProcess(const std::string& model) {
    pid_ = spawn_quantlab({"serve", model, "--port", "0", "--threads", "2", "--ctx", "2048"}, io_ / "err", io_ / "out");
    port_ = pid_ > 0 ? wait_for_port(io_ / "out", 60) : -1;
  }
  ~ServeProcess() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  std::string err() const { return slurp(io_ / "err"); }

 private:
  TempDir io_;
  pid_t pid_ = -1;
  int port_ = -1;
};

// The per-query outcome bench records, without timings and token counts.
nlohmann::json decisions(const nlohmann::json& model) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& q : model["queries"])
    out.push_back({q["id"], q["decision"], q["called_tool"], q["correct"], q["arguments_correct"], q["reply"]});
  return out;
}

TEST(ServeCli, BenchAgainstTheServerMatchesTheInProcessBench) {
  TempDir work;
  const std::string q8 = work / "q8";
  ASSERT_EQ(run_quantlab("quantize " + shell_quote(tool_calling::kFused) + " " + shell_quote(q8) + " --bits 8").exit_code, 0);
  ServeProcess server(q8);
  ASSERT_GT(server.port(), 0) << server.err();
  for (const std::string& suite : {tool_calling::kDev40, tool_calling::kSeed5}) {
    const RunResult r = run_quantlab("bench --model local=" + shell_quote(q8) + " --model " +
                                     shell_quote("q8=" + server.url() + "@" + q8) + " --suite " + shell_quote(suite) +
                                     " --no-cold --json");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const nlohmann::json j = nlohmann::json::parse(r.out);
    const nlohmann::json& local = j["models"][0];
    const nlohmann::json& remote = j["models"][1];
    ASSERT_EQ(remote["queries"].size(), local["queries"].size());
    EXPECT_EQ(decisions(remote), decisions(local)) << suite;
    EXPECT_EQ(remote["accuracy"], local["accuracy"]) << suite;
    EXPECT_EQ(remote["model"]["disk_bytes"], local["model"]["disk_bytes"]);  // from @DIR
  }
  // Without @DIR the size rules are not measured, and say so rather than pass.
  const RunResult bare = run_quantlab("bench --model local=" + shell_quote(q8) + " --model " +
                                      shell_quote("q8=" + server.url()) + " --suite " + shell_quote(tool_calling::kSeed5) +
                                      " --no-cold");
  EXPECT_EQ(bare.exit_code, 0) << bare.err;
  EXPECT_NE(bare.out.find("disk not measured, memory not measured"), std::string::npos) << bare.out;
  EXPECT_NE(bare.out.find("disk_smaller_pct: not measured"), std::string::npos) << bare.out;
}

TEST(ServeCli, BenchNamesADeadServerOrABadUrl) {
  const RunResult dead = run_quantlab("bench --model dead=http://127.0.0.1:9/v1 --suite " + shell_quote(tool_calling::kSeed5) +
                                      " --no-cold");
  EXPECT_EQ(dead.exit_code, kInvalid) << dead.err;
  EXPECT_NE(dead.err.find("http://127.0.0.1:9/v1/models: no answer from the server"), std::string::npos) << dead.err;
  const RunResult bad = run_quantlab("bench --model x=http://:80:80/v1 --suite " + shell_quote(tool_calling::kSeed5));
  EXPECT_EQ(bad.exit_code, kUsage) << bad.err;
  EXPECT_NE(bad.err.find("is not a server URL"), std::string::npos) << bad.err;
}

TEST(ServeCli, RefusesWhatItCannotServeBeforeListening) {
  TempDir empty;
  const RunResult missing = run_quantlab("serve " + shell_quote(empty / "nothing") + " --port 0");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_EQ(missing.err.rfind("quantlab: error: ", 0), 0u) << missing.err;
  EXPECT_EQ(missing.out.find("listening"), std::string::npos);
  const RunResult bad_port = run_quantlab("serve " + shell_quote(tool_calling::kFused) + " --port 70000");
  EXPECT_EQ(bad_port.exit_code, kUsage);
  const RunResult help = run_quantlab("serve --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--api-key"), std::string::npos);
}

}  // namespace
}  // namespace quantlab::testing
