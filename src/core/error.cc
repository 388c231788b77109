#include "core/error.h"

namespace quantlab {

void fail_check(const char* expr, const char* file, int line, const std::string& what) {
  throw Error(ErrorKind::kInternal,
              fmt::format("internal error: check '{}' failed at {}:{}{}{}", expr, file, line,
                          what.empty() ? "" : ": ", what));
}

}  // namespace quantlab
