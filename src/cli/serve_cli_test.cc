// `quantlab serve` as a process: it prints where it listens, answers, and on SIGTERM finishes the
// request in flight and exits 0; a model it cannot serve is refused before it listens.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>

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
