#include "cli/token_ids.h"

#include <charconv>

#include "core/error.h"

namespace quantlab::cli {

std::vector<int32_t> parse_token_ids(const std::string& text, const std::string& flag) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(start, end - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    int32_t id = -1;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), id);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || id < 0)
      fail(ErrorKind::kUsage, "{} {}: '{}' is not a token id (expected comma-separated non-negative integers)",
           flag, text, item);
    ids.push_back(id);
    start = end + 1;
  }
  return ids;
}

}  // namespace quantlab::cli
