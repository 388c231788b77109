#include "cli/bit_widths.h"

#include <algorithm>
#include <charconv>

#include "core/error.h"
#include "kernels/format.h"

namespace quantlab::cli {

std::vector<int> parse_bit_widths(const std::string& text, const std::string& flag) {
  std::vector<int> bits;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = std::min(text.find(',', start), text.size());
    std::string item = text.substr(start, end - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    int b = 0;
    const auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), b);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || !kernels::is_supported_bits(b))
      fail(ErrorKind::kUsage, "{} {}: '{}' is not a bit width (expected comma-separated widths: {})", flag, text,
           item, kernels::supported_bits_text());
    if (std::find(bits.begin(), bits.end(), b) != bits.end())
      fail(ErrorKind::kUsage, "{} {}: {} appears twice", flag, text, b);
    bits.push_back(b);
    start = end + 1;
  }
  return bits;
}

}  // namespace quantlab::cli
