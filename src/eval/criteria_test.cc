#include "eval/criteria.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace quantlab::eval {
namespace {

std::string error_of(std::string_view text) {
  try {
    parse_criteria(text, "rules.toml");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
    return e.what();
  }
  ADD_FAILURE() << "no error for: " << text;
  return "";
}

TEST(Criteria, DefaultsAreTheArchitectureTable) {
  const Criteria c = default_criteria();
  EXPECT_EQ(c.optimal.disk_smaller_pct, 30.0);
  EXPECT_EQ(c.optimal.memory_less_pct, 25.0);
  EXPECT_EQ(c.optimal.accuracy_min_pct, 100.0);
  EXPECT_EQ(c.optimal.speed_ratio, 1.1);
  EXPECT_EQ(c.minimum_viable.disk_smaller_pct, 25.0);
  EXPECT_EQ(c.minimum_viable.memory_less_pct, 20.0);
  EXPECT_EQ(c.minimum_viable.accuracy_min_pct, 80.0);
  EXPECT_EQ(c.minimum_viable.speed_ratio, 1.0);  // "similar or better"
}

TEST(Criteria, ParsesSectionsIntegersAndFloatsAndLeavesMissingKeysUnchecked) {
  const Criteria c = parse_criteria(
      "# stricter disk rule\n[optimal]\ndisk_smaller_pct = 35\nspeed_ratio = 1.25\n\n"
      "[minimum_viable]\nmemory_less_pct = 12.5\n",
      "rules.toml");
  EXPECT_EQ(c.source, "rules.toml");
  EXPECT_EQ(c.optimal.disk_smaller_pct, 35.0);
  EXPECT_EQ(c.optimal.speed_ratio, 1.25);
  EXPECT_FALSE(c.optimal.memory_less_pct);
  EXPECT_FALSE(c.minimum_viable.disk_smaller_pct);
  EXPECT_EQ(c.minimum_viable.memory_less_pct, 12.5);
}

TEST(Criteria, ErrorsNameTheFileAndLine) {
  EXPECT_NE(error_of("[optimal]\ndisk_smaller_pct = 30\ndisk_smaler_pct = 3\n").find("rules.toml:3"), std::string::npos);
  EXPECT_NE(error_of("[optimal]\ndisk_smaler_pct = 3\n").find("disk_smaler_pct"), std::string::npos);
  EXPECT_NE(error_of("\n[optimum]\n").find("rules.toml:2"), std::string::npos);
  EXPECT_NE(error_of("[optimal]\nspeed_ratio = \"fast\"\n").find("rules.toml:2"), std::string::npos);
  EXPECT_NE(error_of("[optimal]\nspeed_ratio = 0\n").find("positive"), std::string::npos);
  EXPECT_NE(error_of("[minimum_viable]\nmemory_less_pct = -1\n").find("rules.toml:2"), std::string::npos);
  EXPECT_NE(error_of("[optimal\n").find("rules.toml:1"), std::string::npos);  // TOML syntax
  EXPECT_NE(error_of("optimal = 3\n").find("must be a section"), std::string::npos);
}

TEST(Criteria, LoadReportsAMissingFile) {
  EXPECT_THROW(load_criteria("/nonexistent/rules.toml"), Error);
}

TEST(Criteria, SizeAndMemoryVerdicts) {
  const Criteria c = default_criteria();
  // Issue 7: Qwen3-30B-A3B 6-bit g64 is 23.5 % smaller than 8-bit: it can never pass.
  auto six64 = check_size_and_memory(c, 23.5, 22.0);
  EXPECT_EQ(six64.verdict, StaticVerdict::kCannotPass);
  ASSERT_FALSE(six64.reasons.empty());
  EXPECT_NE(six64.reasons.back().find("23.5"), std::string::npos);
  EXPECT_EQ(check_size_and_memory(c, 26.5, 24.0).verdict, StaticVerdict::kViableCandidate);
  EXPECT_EQ(check_size_and_memory(c, 35.0, 30.0).verdict, StaticVerdict::kOptimalCandidate);
  EXPECT_EQ(check_size_and_memory(c, 35.0, 19.0).verdict, StaticVerdict::kCannotPass);  // memory decides
  EXPECT_EQ(check_size_and_memory(c, 25.0, 20.0).verdict, StaticVerdict::kViableCandidate);  // "at least"
  Criteria none = parse_criteria("", "empty.toml");
  EXPECT_EQ(check_size_and_memory(none, -5, -5).verdict, StaticVerdict::kOptimalCandidate);
}

}  // namespace
}  // namespace quantlab::eval
