#include "text/jinja/support.h"

namespace quantlab::text::jinja {

void fail_undefined(const Value& v) {
  const std::string& hint = v.undefined_name();
  throw RuntimeError(hint.empty() ? std::string("value is undefined") : hint);
}

void check_string_size(size_t bytes) {
  if (bytes > kMaxStringBytes) runtime_fail("string grows beyond {} bytes", kMaxStringBytes);
}

ValueList iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kList: return v.as_list();
    case Value::Kind::kDict: {
      ValueList keys;
      for (const auto& item : v.as_dict().items) keys.emplace_back(item.first);
      return keys;
    }
    case Value::Kind::kString: {
      ValueList chars;
      auto offsets = codepoint_offsets(v.as_string());
      for (size_t i = 0; i + 1 < offsets.size(); ++i) {
        chars.emplace_back(v.as_string().substr(offsets[i], offsets[i + 1] - offsets[i]));
      }
      return chars;
    }
    case Value::Kind::kUndefined: return {};
    default: runtime_fail("'{}' object is not iterable", type_name(v));
  }
}

}  // namespace quantlab::text::jinja
