#include "serve/openai_client.h"

#include <httplib.h>

#include <chrono>
#include <regex>
#include <thread>

#include "core/error.h"

namespace quantlab::serve {

using ojson = nlohmann::ordered_json;

bool is_remote_spec(const std::string& spec) { return spec.starts_with("http://") || spec.starts_with("https://"); }

RemoteEndpoint parse_remote_endpoint(const std::string& spec) {
  RemoteEndpoint e;
  std::string rest = spec;
  if (const size_t at = rest.rfind('@'); at != std::string::npos) {
    e.dir = rest.substr(at + 1);
    rest.resize(at);
    if (e.dir.empty()) fail(ErrorKind::kUsage, "--model {}: nothing after '@' (the model's directory)", spec);
  }
  if (const size_t hash = rest.find('#'); hash != std::string::npos) {
    e.model_id = rest.substr(hash + 1);
    rest.resize(hash);
    if (e.model_id.empty()) fail(ErrorKind::kUsage, "--model {}: nothing after '#' (the model id)", spec);
  }
  static const std::regex url(R"(^(https?://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?)(/[^?#\s]*)?$)");
  std::smatch m;
  if (!std::regex_match(rest, m, url))
    fail(ErrorKind::kUsage, "--model {}: '{}' is not a server URL (http[s]://host[:port][/v1])", spec, rest);
  e.url = rest;
  e.origin = m[1];
  e.prefix = m[2].matched ? m[2].str() : "";
  while (e.prefix.ends_with('/')) e.prefix.pop_back();
  if (e.prefix.empty()) e.prefix = "/v1";
  return e;
}

OpenAiClient::OpenAiClient(RemoteEndpoint endpoint, std::string api_key, RetryPolicy retry)
    : endpoint_(std::move(endpoint)), api_key_(std::move(api_key)), retry_(retry) {}

OpenAiClient::~OpenAiClient() = default;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The server's own words for a refusal: OpenAI's error.message when the body has one.
std::string error_message(const httplib::Response& r) {
  const ojson j = ojson::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("error")) {
    const ojson& e = j["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string()) return e["message"].get<std::string>();
    if (e.is_string()) return e.get<std::string>();
  }
  return r.body.substr(0, 300);
}

}  // namespace

Exchange OpenAiClient::send(const std::string& method, const std::string& path, const std::string& body) {
  httplib::Client client(endpoint_.origin);
  client.set_connection_timeout(10, 0);
  const auto timeout = static_cast<time_t>(retry_.timeout_seconds);
  client.set_read_timeout(timeout, 0);
  client.set_write_timeout(timeout, 0);
  if (!api_key_.empty()) client.set_bearer_token_auth(api_key_);
  const std::string url = endpoint_.origin + path;
  double wait = retry_.first_wait_seconds;
  Exchange out;
  for (int attempt = 1;; ++attempt) {
    const auto start = std::chrono::steady_clock::now();
    const httplib::Result r = method == "GET" ? client.Get(path) : client.Post(path, body, "application/json");
    const double seconds = seconds_since(start);
    if (!r) fail(ErrorKind::kIo, "{}: no answer from the server ({})", url, httplib::to_string(r.error()));
    if (r->status == 429 || r->status == 503) {
      if (attempt >= retry_.attempts)
        fail(ErrorKind::kIo, "{}: the server refused {} times (HTTP {}: {})", url, attempt, r->status, error_message(*r));
      double pause = wait;
      if (const std::string after = r->get_header_value("Retry-After"); !after.empty())
        pause = std::max(pause, std::atof(after.c_str()));
      std::this_thread::sleep_for(std::chrono::duration<double>(std::min(pause, retry_.max_wait_seconds)));
      wait = std::min(wait * 2, retry_.max_wait_seconds);
      ++out.retries;
      continue;
    }
    if (r->status != 200) fail_input("{}: HTTP {}: {}", url, r->status, error_message(*r));
    out.response = ojson::parse(r->body, nullptr, false);
    if (out.response.is_discarded()) fail_input("{}: the response is not JSON: {}", url, r->body.substr(0, 200));
    out.seconds = seconds;
    return out;
  }
}

std::vector<std::string> OpenAiClient::model_ids() {
  const Exchange e = send("GET", endpoint_.prefix + "/models", "");
  std::vector<std::string> ids;
  if (e.response.contains("data") && e.response["data"].is_array())
    for (const ojson& m : e.response["data"])
      if (m.is_object() && m.contains("id") && m["id"].is_string()) ids.push_back(m["id"].get<std::string>());
  return ids;
}

Exchange OpenAiClient::chat(const ojson& body) {
  Exchange e = send("POST", endpoint_.prefix + "/chat/completions", body.dump());
  const ojson& r = e.response;
  if (!r.is_object() || !r.contains("choices") || !r["choices"].is_array() || r["choices"].empty() ||
      !r["choices"][0].contains("message"))
    fail_input("{}{}/chat/completions: the response has no choices[0].message: {}", endpoint_.origin, endpoint_.prefix,
               r.dump().substr(0, 200));
  return e;
}

namespace {

// JSON as Python's json.dumps writes it (", " and ": "), which is how Qwen/Hermes models write the
// body of a tool call: a remote reply's text then reads like the local one.
std::string python_style(const ojson& v) {
  std::string out;
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it)
      out += (out.empty() ? "" : ", ") + ojson(it.key()).dump() + ": " + python_style(it.value());
    return "{" + out + "}";
  }
  if (v.is_array()) {
    for (const ojson& x : v) out += (out.empty() ? "" : ", ") + python_style(x);
    return "[" + out + "]";
  }
  return v.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

}  // namespace

std::string reply_text(const ojson& message) {
  std::string text;
  if (message.contains("content") && message["content"].is_string()) text = message["content"].get<std::string>();
  if (!message.contains("tool_calls") || !message["tool_calls"].is_array()) return text;
  for (const ojson& call : message["tool_calls"]) {
    const ojson fn = call.value("function", ojson::object());
    ojson arguments = ojson::object();
    if (fn.contains("arguments")) {
      const ojson& a = fn["arguments"];
      // OpenAI sends the arguments as a JSON string; keep text that is not JSON as it was written.
      arguments = a.is_string() ? ojson::parse(a.get<std::string>(), nullptr, false) : a;
      if (arguments.is_discarded()) arguments = a;
    }
    const ojson block = {{"name", fn.value("name", "")}, {"arguments", arguments}};
    if (!text.empty()) text += "\n";
    text += "<tool_call>\n" + python_style(block) + "\n</tool_call>";
  }
  return text;
}

}  // namespace quantlab::serve
