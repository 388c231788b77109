#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/output_dir.h"
#include "io/safetensors_writer.h"
#include "test_support.h"

namespace quantlab::io {
namespace {

using testing::data_path;
using testing::TempDir;

TEST(Safetensors, ReadsReferenceFixture) {
  const auto w = ModelWeights::open(data_path("reference-models/qwen3-tiny"));
  const auto& e = w.at("model.embed_tokens.weight");
  EXPECT_EQ(e.info->dtype, DType::kBF16);
  EXPECT_EQ(e.info->shape, (std::vector<int64_t>{512, 128}));
  EXPECT_EQ(w.bytes(e).size(), 512u * 128 * 2);
  EXPECT_FALSE(w.contains("lm_head.weight"));  // tied
}

TEST(Safetensors, WriterRoundTripAcrossShardsWithRangeWrites) {
  TempDir tmp;
  std::vector<TensorSpec> specs = {{"a.weight", DType::kF32, {4, 8}},
                                   {"b.weight", DType::kU32, {3}},
                                   {"c.weight", DType::kBF16, {16, 2}}};
  {
    SafetensorsWriter w(tmp.path(), specs, 100);  // 100-byte shards: a (128 B) alone, then b + c
    std::vector<float> a(32);
    for (int i = 0; i < 32; ++i) a[i] = static_cast<float>(i) * 0.5f;
    const auto* ab = reinterpret_cast<const uint8_t*>(a.data());
    w.write_range("a.weight", 64, {ab + 64, 64});  // second half first: order does not matter
    w.write_range("a.weight", 0, {ab, 64});
    const uint32_t b[3] = {1, 2, 0xdeadbeef};
    w.write("b.weight", {reinterpret_cast<const uint8_t*>(b), 12});
    std::vector<uint8_t> c(64, 7);
    w.write("c.weight", c);
    w.finish(32 + 3 + 32);
    EXPECT_EQ(w.shard_names().size(), 2u);
  }
  const auto m = ModelWeights::open(tmp.path());
  EXPECT_EQ(m.files().size(), 2u);
  float a5;
  std::memcpy(&a5, m.bytes("a.weight").data() + 5 * 4, 4);
  EXPECT_EQ(a5, 2.5f);
  uint32_t b2;
  std::memcpy(&b2, m.bytes("b.weight").data() + 8, 4);
  EXPECT_EQ(b2, 0xdeadbeefu);
  const auto index = nlohmann::json::parse(testing::slurp_file(tmp / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 128 + 12 + 64);
  EXPECT_EQ(index["weight_map"]["c.weight"], "model-00002-of-00002.safetensors");
  // Data starts 8-byte aligned and files have no holes.
  for (const auto& f : m.files()) {
    uint64_t header_len = 0;
    std::memcpy(&header_len, f->mapped().data(), 8);
    EXPECT_EQ(header_len % 8, 0u);
    uint64_t end = 8 + header_len;
    for (const auto& t : f->tensors()) {
      EXPECT_EQ(t.offset, end);
      end += t.nbytes;
    }
    EXPECT_EQ(end, f->file_size());
  }
}

TEST(Safetensors, UncachedReadsGiveTheMappedBytesAtAnyOffset) {
  const auto w = ModelWeights::open(data_path("tool-calling/dense-fused-strong-f16"));
  const auto& e = w.at("model.embed_tokens.weight");  // 1088 x 256 float16: 557 KB
  const auto mapped = w.bytes(e);
  DirectBuffer buffer;
  // Unaligned starts and lengths, a read inside one 4 KiB block, one crossing many, the tensor's end.
  const std::vector<std::pair<uint64_t, uint64_t>> reads = {
      {0, 1}, {3, 4093}, {4095, 2}, {1234, 100000}, {e.info->nbytes - 777, 777}, {0, e.info->nbytes}};
  for (const auto& [offset, n] : reads) {
    const uint8_t* got = e.file->read_uncached(*e.info, offset, n, buffer);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(buffer.reserve(0)) % DirectBuffer::kAlignment, 0u);
    EXPECT_EQ(0, std::memcmp(got, mapped.data() + offset, n)) << offset << "+" << n;
  }
  EXPECT_THROW(e.file->read_uncached(*e.info, e.info->nbytes - 10, 20, buffer), Error);
}

TEST(Safetensors, PreadMatchesMappedBytes) {
  const auto w = ModelWeights::open(data_path("reference-models/llama-tiny"));
  const auto& e = w.at("model.layers.0.mlp.down_proj.weight");
  std::vector<uint8_t> buf(100);
  e.file->read(*e.info, 40, buf.size(), buf.data());
  EXPECT_EQ(0, std::memcmp(buf.data(), w.bytes(e).data() + 40, buf.size()));
  EXPECT_THROW(e.file->read(*e.info, e.info->nbytes - 10, 20, buf.data()), Error);
}

TEST(OutputDir, NothingLeftWithoutCommit) {
  TempDir tmp;
  {
    AtomicOutputDir out(tmp / "model", false);
    std::ofstream(out.file("x.txt")) << "partial";
  }
  EXPECT_FALSE(std::filesystem::exists(tmp / "model"));
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path()));
}

TEST(OutputDir, CommitMovesIntoPlaceAndRefusesInputAsOutput) {
  TempDir tmp;
  {
    AtomicOutputDir out(tmp / "model", false);
    std::ofstream(out.file("x.txt")) << "done";
    out.commit();
  }
  EXPECT_TRUE(std::filesystem::exists(tmp / "model/x.txt"));
  EXPECT_THROW(AtomicOutputDir(tmp / "model", false), Error);
  EXPECT_THROW(check_output_not_input(tmp / "model", tmp / "model/sub"), Error);
  EXPECT_NO_THROW(check_output_not_input(tmp / "model", tmp / "model2"));
}

}  // namespace
}  // namespace quantlab::io
