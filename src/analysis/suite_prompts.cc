#include "analysis/suite_prompts.h"

#include <algorithm>
#include <optional>

#include "core/error.h"
#include "core/mapped_file.h"

#include "eval/suite.h"

namespace quantlab::analysis {

std::vector<std::vector<int32_t>> encode_suite_prompts(const std::string& suite_path, const std::string& tools_path,
                                                       const chat::ChatModel& chat) {
  std::vector<std::vector<int32_t>> prompts;
  if (suite_path.empty()) return prompts;
  std::optional<eval::ToolSet> tools;
  if (!tools_path.empty()) tools = eval::load_tools(tools_path);
  const eval::Suite suite = eval::load_suite(suite_path, tools ? &*tools : nullptr);
  for (const auto& q : suite.queries) {
    text::ChatRequest request;
    request.messages = q.messages;
    if (tools) request.tools = tools->schemas;
    request.extra = {{"enable_thinking", false}};
    prompts.push_back(chat.encode_chat(request));
  }
  return prompts;
}

std::vector<std::vector<int32_t>> encode_text_chunks(const std::string& path, size_t chunk,
                                                     const chat::ChatModel& chat) {
  std::vector<std::vector<int32_t>> chunks;
  if (path.empty()) return chunks;
  const std::vector<int32_t> ids = chat.tokenizer().encode(read_text_file(path));
  if (ids.empty()) fail_input("{}: the text has no tokens", path);
  for (size_t i = 0; i < ids.size(); i += chunk)
    chunks.emplace_back(ids.begin() + static_cast<std::ptrdiff_t>(i),
                        ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), i + chunk)));
  return chunks;
}

}  // namespace quantlab::analysis
