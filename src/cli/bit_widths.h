// The --bits list of `retention` and `sweep`: comma-separated bit widths, e.g. "8,7,6,5,4,3".
#pragma once

#include <string>
#include <vector>

namespace quantlab::cli {

// "8, 6,4" -> {8, 6, 4}, in the order given. Throws Error(kUsage) naming the flag for an item that is
// not a supported width (2..8), for duplicates and for an empty list.
std::vector<int> parse_bit_widths(const std::string& text, const std::string& flag = "--bits");

}  // namespace quantlab::cli
