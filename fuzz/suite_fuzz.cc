// A query suite (JSON lines) and its tools file from a stranger. Input: suite, 0x1E, tools JSON.
// A suite that loads has what the benchmark relies on: ids, message lists, expected tools it knows.
#include "eval/suite.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace quantlab;
  const auto parts = fuzz::split_parts(data, size, 2);
  const auto& dir = fuzz::scratch();
  dir.clear();
  const std::string suite_path = dir.write("suite.jsonl", parts[0]);
  const std::string tools_path = dir.write("tools.json", parts[1]);
  std::optional<eval::ToolSet> tools;
  fuzz::parses_or_refuses([&] { tools = eval::load_tools(tools_path); });
  fuzz::parses_or_refuses([&] {
    const eval::Suite suite = eval::load_suite(suite_path, tools ? &*tools : nullptr);
    for (const eval::Query& q : suite.queries) {
      fuzz::require(q.messages.is_array() && !q.messages.empty(), "a query has messages");
      fuzz::require(!q.expect_tool || !tools || !q.tool || tools->contains(*q.tool), "expected tool is known");
      fuzz::require(q.line >= 1, "a query knows its line");
    }
  });
  return 0;
}
