// Query suites (JSON lines) and tool schemas for the tool-or-answer benchmark.
// Line format: {"id", "messages": [{"role","content"}...], "expected": "tool"|"direct", "tool"?,
// "arguments"?}. Errors name the file and line.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace quantlab::eval {

struct Query {
  std::string id;
  nlohmann::ordered_json messages;  // chat messages, as given to the chat template
  bool expect_tool = false;
  std::optional<std::string> tool;                   // expected tool name (tool queries)
  std::optional<nlohmann::ordered_json> arguments;   // expected arguments, compared JSON-equal
  size_t line = 0;
};

struct Suite {
  std::string path;
  std::vector<Query> queries;
};

struct ToolSet {
  std::string path;
  nlohmann::ordered_json schemas;  // the list passed to chat templates as `tools`
  std::vector<std::string> names;
  bool contains(const std::string& name) const;
};

// Loads the tools file (a JSON list of {"type":"function","function":{"name",...}} or bare functions).
ToolSet load_tools(const std::string& path);

// tools.json beside the suite or one folder up (tests/data/tool-calling/{queries/,tools.json});
// Error(kUsage) when there is none.
std::string default_tools_path(const std::string& suite_path);

// Loads a suite; when `tools` is given, every expected tool must be one of them.
Suite load_suite(const std::string& path, const ToolSet* tools = nullptr);

}  // namespace quantlab::eval
