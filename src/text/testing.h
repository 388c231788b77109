// Helpers for the text layer's tests only (included by *_test.cc): the two fixture tokenizers, loaded
// once per test binary.
#pragma once

#include <string>

#include "text/tokenizer.h"

namespace quantlab::text::test_fixtures {

inline const Tokenizer& qwen3() {
  static const Tokenizer tokenizer =
      Tokenizer::from_file(std::string(QUANTLAB_TEST_DATA) + "/tokenizers/qwen3/tokenizer.json");
  return tokenizer;
}

inline const Tokenizer& tool_calling() {
  static const Tokenizer tokenizer =
      Tokenizer::from_file(std::string(QUANTLAB_TEST_DATA) + "/tool-calling/tokenizer.json");
  return tokenizer;
}

}  // namespace quantlab::text::test_fixtures
