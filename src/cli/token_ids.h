// The --ids flag of `generate` and `logits`: a comma-separated list of token ids.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace quantlab::cli {

// "1,2, 3" -> {1, 2, 3}. Throws Error(kUsage) naming the flag and the bad item.
std::vector<int32_t> parse_token_ids(const std::string& text, const std::string& flag = "--ids");

}  // namespace quantlab::cli
