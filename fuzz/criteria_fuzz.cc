// A criteria TOML file from a stranger: any text either parses into rules within range or is
// refused naming the line.
#include "eval/criteria.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace quantlab;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  fuzz::parses_or_refuses([&] {
    const eval::Criteria criteria = eval::parse_criteria(text, "fuzz/criteria.toml");
    for (const eval::CriteriaLevel* level : {&criteria.optimal, &criteria.minimum_viable}) {
      fuzz::require(!level->disk_smaller_pct || *level->disk_smaller_pct >= 0, "percentages are not negative");
      fuzz::require(!level->speed_ratio || *level->speed_ratio > 0, "speed ratios are positive");
    }
    (void)eval::check_size_and_memory(criteria, 25.0, 10.0);
  });
  return 0;
}
