// Tokenizer and chat-template identities of model directories (issue 20): equal files give equal
// digests, a Qwen3 and a Qwen2.5 template differ, and a directory without the files gives "".
#include "bench/text_identity.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test_support.h"

namespace quantlab::bench {
namespace {

using testing::data_path;

TEST(TextIdentity, EqualFilesEqualDigestsAcrossFamilies) {
  const TextIdentity fused = text_identity(data_path("tool-calling/dense-fused-strong-f16"));
  const TextIdentity base = text_identity(data_path("tool-calling/dense-base-f16"));
  const TextIdentity qwen25 = text_identity(data_path("templates/qwen2.5-npm"));
  const TextIdentity none = text_identity(data_path("reference-models/qwen2-tiny"));
  EXPECT_EQ(fused.tokenizer_digest.size(), 16u);
  EXPECT_EQ(fused.tokenizer_digest, base.tokenizer_digest);
  EXPECT_EQ(fused.chat_template_digest, base.chat_template_digest);
  EXPECT_NE(fused.tokenizer_digest, qwen25.tokenizer_digest);
  EXPECT_NE(fused.chat_template_digest, qwen25.chat_template_digest);
  EXPECT_EQ(none.tokenizer_digest, "");
  EXPECT_EQ(none.chat_template_digest, "");
  // FNV-1a 64 of the file's bytes: the empty input's digest is the offset basis.
  testing::TempDir tmp;
  { std::ofstream(tmp / "tokenizer.json"); }
  EXPECT_EQ(text_identity(tmp / "").tokenizer_digest, "cbf29ce484222325");
}

}  // namespace
}  // namespace quantlab::bench
