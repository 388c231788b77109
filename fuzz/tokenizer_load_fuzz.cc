// tokenizer.json from a stranger: vocab, merges (pairs or "a b" strings), added tokens, normalizer,
// pre-tokenizer (regex included), decoder. A tokenizer that loads must encode and decode safely.
#include "fuzz_support.h"
#include "text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace quantlab;
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  fuzz::parses_or_refuses([&] {
    const text::Tokenizer tokenizer = text::Tokenizer::from_json(json, "fuzz/tokenizer.json");
    const std::vector<int32_t> ids = tokenizer.encode("Hello, world! 你好 <think>x</think>\n\n  42");
    for (int32_t id : ids) {
      fuzz::require(id >= 0 && static_cast<size_t>(id) < tokenizer.vocab_size(), "id in range");
    }
    (void)tokenizer.decode(ids);
    const std::vector<int32_t> odd = {-1, 0, 1, static_cast<int32_t>(tokenizer.vocab_size()), 1 << 30};
    (void)tokenizer.decode(odd, true);
  });
  return 0;
}
