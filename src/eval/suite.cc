#include "eval/suite.h"

#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "core/mapped_file.h"

namespace quantlab::eval {

using ojson = nlohmann::ordered_json;

bool ToolSet::contains(const std::string& name) const {
  for (const auto& n : names)
    if (n == name) return true;
  return false;
}

std::string default_tools_path(const std::string& suite_path) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(suite_path).parent_path();
  for (const fs::path& candidate : {dir / "tools.json", dir.parent_path() / "tools.json"})
    if (fs::exists(candidate)) return candidate.string();
  fail(ErrorKind::kUsage, "no tools.json beside {} or one folder up: pass --tools", suite_path);
}

ToolSet load_tools(const std::string& path) {
  ToolSet t;
  t.path = path;
  try {
    t.schemas = ojson::parse(read_text_file(path));
  } catch (const ojson::exception& e) {  // bad syntax, and numbers beyond a double (406)
    fail_input("{}: not valid JSON: {}", path, e.what());
  }
  if (!t.schemas.is_array()) fail_input("{}: expected a JSON list of tool schemas", path);
  for (size_t i = 0; i < t.schemas.size(); ++i) {
    const ojson& s = t.schemas[i];
    const ojson* fn = s.contains("function") ? &s["function"] : &s;
    if (!fn->is_object() || !fn->contains("name") || !(*fn)["name"].is_string())
      fail_input("{}: tool {} has no function name", path, i);
    t.names.push_back((*fn)["name"].get<std::string>());
  }
  return t;
}

namespace {

Query parse_query(const ojson& j, const std::string& path, size_t line, const ToolSet* tools) {
  if (!j.is_object()) fail_input("{}:{}: each line must be a JSON object", path, line);
  Query q;
  q.line = line;
  if (!j.contains("id") || !(j["id"].is_string() || j["id"].is_number()))
    fail_input("{}:{}: missing 'id'", path, line);
  q.id = j["id"].is_string() ? j["id"].get<std::string>() : j["id"].dump();
  if (!j.contains("messages") || !j["messages"].is_array() || j["messages"].empty())
    fail_input("{}:{}: '{}' needs a non-empty 'messages' list", path, line, q.id);
  for (const auto& m : j["messages"])
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      fail_input("{}:{}: '{}': every message needs a 'role'", path, line, q.id);
  q.messages = j["messages"];
  const std::string expected = j.value("expected", "");
  if (expected != "tool" && expected != "direct")
    fail_input("{}:{}: '{}': 'expected' must be \"tool\" or \"direct\", got '{}'", path, line, q.id, expected);
  q.expect_tool = expected == "tool";
  if (j.contains("tool") && !j["tool"].is_null()) {
    if (!j["tool"].is_string()) fail_input("{}:{}: '{}': 'tool' must be a string", path, line, q.id);
    q.tool = j["tool"].get<std::string>();
    if (tools && !tools->contains(*q.tool))
      fail_input("{}:{}: '{}': unknown tool '{}' (not in {})", path, line, q.id, *q.tool, tools->path);
  }
  if (q.expect_tool && !q.tool) fail_input("{}:{}: '{}': a tool query needs 'tool'", path, line, q.id);
  if (j.contains("arguments") && !j["arguments"].is_null()) q.arguments = j["arguments"];
  return q;
}

}  // namespace

Suite load_suite(const std::string& path, const ToolSet* tools) {
  std::ifstream in(path);
  if (!in) fail(ErrorKind::kIo, "{}: cannot open", path);
  Suite s;
  s.path = path;
  std::set<std::string> ids;
  std::string text;
  for (size_t line = 1; std::getline(in, text); ++line) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    ojson j;
    try {
      j = ojson::parse(text);
    } catch (const ojson::exception& e) {  // bad syntax, and numbers beyond a double (406)
      fail_input("{}:{}: not valid JSON: {}", path, line, e.what());
    }
    Query q;
    try {
      q = parse_query(j, path, line, tools);
    } catch (const ojson::exception& e) {  // a field of the wrong type
      fail_input("{}:{}: {}", path, line, e.what());
    }
    if (!ids.insert(q.id).second) fail_input("{}:{}: duplicate query id '{}'", path, line, q.id);
    s.queries.push_back(std::move(q));
  }
  if (s.queries.empty()) fail_input("{}: the suite has no queries", path);
  return s;
}

}  // namespace quantlab::eval
