// The GGUF writer against the format: block arithmetic on hand-checked values, and a file read back by
// an independent parser of the layout (header, keys, tensor table, aligned data).
#include "peer/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

namespace quantlab::peer {
namespace {

TEST(GgufBlocks, Q8ScalesByTheLargestMagnitudeAndRoundsHalfAwayFromZero) {
  std::vector<float> x(32, 0.0f);
  x[0] = -127.0f;  // amax: d = 1
  x[1] = 2.5f;     // half-way: rounds away from zero to 3
  x[2] = -2.5f;    // to -3
  x[3] = 50.0f;
  std::vector<uint8_t> blocks(ggml_row_bytes(GgmlType::kQ8_0, 32));
  ASSERT_EQ(blocks.size(), 34u);
  quantize_q8_0(x, blocks.data());
  EXPECT_EQ(static_cast<int8_t>(blocks[2]), -127);
  EXPECT_EQ(static_cast<int8_t>(blocks[3]), 3);
  EXPECT_EQ(static_cast<int8_t>(blocks[4]), -3);
  EXPECT_EQ(static_cast<int8_t>(blocks[5]), 50);
  EXPECT_EQ(blocks[6], 0);
}

TEST(GgufBlocks, Q4KeepsTheExtremesSignAndPacksHalvesIntoNibbles) {
  // Largest magnitude negative: d = -8 / -8 = 1, codes = value + 8.
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j % 16) - 8.0f;
  std::vector<uint8_t> blocks(ggml_row_bytes(GgmlType::kQ4_0, 32));
  ASSERT_EQ(blocks.size(), 18u);
  quantize_q4_0(x, blocks.data());
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(blocks[2 + j] & 15, j) << j;  // value j - 8 -> code j, low nibble from the first half
    EXPECT_EQ(blocks[2 + j] >> 4, j) << j;  // second half in the high nibble
  }
  // Largest magnitude positive: d = -1, so +8 is code 0 and the most negative code is clamped at 15.
  std::vector<float> y(32, 0.0f);
  y[5] = 8.0f;
  y[6] = -7.0f;
  y[20] = -8.0f;  // same magnitude, later: the first one (positive) sets the sign
  quantize_q4_0(y, blocks.data());
  EXPECT_EQ(blocks[2 + 5] & 15, 0);
  EXPECT_EQ(blocks[2 + 6] & 15, 15);
  EXPECT_EQ(blocks[2 + 4] >> 4, 15);  // -8 / -1 + 8.5 = 16.5 -> clamped to 15
  EXPECT_EQ(blocks[2 + 0] & 15, 8);
}

TEST(GgufBlocks, RandomRowsRoundTripWithinHalfAStep) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> x(4096), back(4096);
  for (float& v : x) v = normal(rng);
  for (GgmlType type : {GgmlType::kQ8_0, GgmlType::kQ4_0}) {
    std::vector<uint8_t> blocks(ggml_row_bytes(type, x.size()));
    encode_row(type, x, blocks.data());
    if (type == GgmlType::kQ8_0) dequantize_q8_0(blocks.data(), back);
    else dequantize_q4_0(blocks.data(), back);
    for (size_t b = 0; b < x.size(); b += 32) {
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b + j]));
      const float step = type == GgmlType::kQ8_0 ? amax / 127 : amax / 8;
      // Half a step, plus the float16 rounding of the scale times the largest code.
      // Q4_0's codes run from -8 to 7 steps: a value of the other sign beyond 7.5 steps is clamped.
      for (int j = 0; j < 32; ++j) {
        const bool clamped = type == GgmlType::kQ4_0 && std::fabs(x[b + j]) >= 7.5f * step;
        const float bound = (clamped ? 1.0f : 0.5f) * step + amax * 1e-3f;
        ASSERT_LE(std::fabs(back[b + j] - x[b + j]), bound) << ggml_type_name(type) << " " << b + j;
      }
    }
  }
}

TEST(GgufBlocks, RowsOfOtherLengthsAreRefused) {
  std::vector<float> x(33, 1.0f);
  std::vector<uint8_t> out(64);
  EXPECT_ANY_THROW(quantize_q8_0(x, out.data()));
  EXPECT_ANY_THROW(ggml_row_bytes(GgmlType::kQ4_0, 48));
  EXPECT_EQ(ggml_row_bytes(GgmlType::kF16, 48), 96u);
}

// A minimal reader of the layout, written against the format description, not the writer.
struct Reader {
  std::vector<uint8_t> bytes;
  size_t at = 0;
  template <typename T>
  T get() {
    T v;
    std::memcpy(&v, bytes.data() + at, sizeof(T));
    at += sizeof(T);
    return v;
  }
  std::string text() {
    const uint64_t n = get<uint64_t>();
    std::string s(reinterpret_cast<const char*>(bytes.data() + at), n);
    at += n;
    return s;
  }
};

TEST(GgufFile, HeaderKeysAndAlignedTensorsReadBack) {
  const std::string path = (std::filesystem::temp_directory_path() / "quantlab_gguf_test.gguf").string();
  GgufWriter writer;
  writer.set("general.architecture", std::string("qwen3"));
  writer.set("qwen3.block_count", uint32_t{28});
  writer.set("tokenizer.ggml.tokens", std::vector<std::string>{"a", "bc"});
  writer.set("tokenizer.ggml.token_type", std::vector<int32_t>{1, 3});
  writer.set("qwen3.rope.freq_base", 1e6f);
  const std::vector<float> norm = {1.0f, 2.0f, 3.0f};  // 12 bytes: the next tensor starts at 32
  writer.add_tensor({"n.weight", GgmlType::kF32, {3}, [&](std::vector<uint8_t>& out) {
                       out.resize(12);
                       std::memcpy(out.data(), norm.data(), 12);
                     }});
  std::vector<float> matrix(2 * 64);
  for (size_t i = 0; i < matrix.size(); ++i) matrix[i] = 0.01f * static_cast<float>(i);
  writer.add_tensor({"m.weight", GgmlType::kQ8_0, {2, 64}, [&](std::vector<uint8_t>& out) {
                       out.resize(2 * ggml_row_bytes(GgmlType::kQ8_0, 64));
                       quantize_q8_0(matrix, out.data());
                     }});
  writer.write(path);
  ASSERT_FALSE(std::filesystem::exists(path + ".tmp"));

  Reader r;
  std::ifstream in(path, std::ios::binary);
  r.bytes.assign(std::istreambuf_iterator<char>(in), {});
  ASSERT_EQ(std::string(reinterpret_cast<const char*>(r.bytes.data()), 4), "GGUF");
  r.at = 4;
  EXPECT_EQ(r.get<uint32_t>(), 3u);
  EXPECT_EQ(r.get<uint64_t>(), 2u);  // tensors
  ASSERT_EQ(r.get<uint64_t>(), 5u);  // keys
  EXPECT_EQ(r.text(), "general.architecture");
  EXPECT_EQ(r.get<uint32_t>(), 8u);
  EXPECT_EQ(r.text(), "qwen3");
  EXPECT_EQ(r.text(), "qwen3.block_count");
  EXPECT_EQ(r.get<uint32_t>(), 4u);
  EXPECT_EQ(r.get<uint32_t>(), 28u);
  EXPECT_EQ(r.text(), "tokenizer.ggml.tokens");
  EXPECT_EQ(r.get<uint32_t>(), 9u);
  EXPECT_EQ(r.get<uint32_t>(), 8u);
  ASSERT_EQ(r.get<uint64_t>(), 2u);
  EXPECT_EQ(r.text(), "a");
  EXPECT_EQ(r.text(), "bc");
  EXPECT_EQ(r.text(), "tokenizer.ggml.token_type");
  EXPECT_EQ(r.get<uint32_t>(), 9u);
  EXPECT_EQ(r.get<uint32_t>(), 5u);
  ASSERT_EQ(r.get<uint64_t>(), 2u);
  EXPECT_EQ(r.get<int32_t>(), 1);
  EXPECT_EQ(r.get<int32_t>(), 3);
  EXPECT_EQ(r.text(), "qwen3.rope.freq_base");
  EXPECT_EQ(r.get<uint32_t>(), 6u);
  EXPECT_EQ(r.get<float>(), 1e6f);
  // Tensor table: extents innermost first.
  EXPECT_EQ(r.text(), "n.weight");
  ASSERT_EQ(r.get<uint32_t>(), 1u);
  EXPECT_EQ(r.get<uint64_t>(), 3u);
  EXPECT_EQ(r.get<uint32_t>(), 0u);
  EXPECT_EQ(r.get<uint64_t>(), 0u);
  EXPECT_EQ(r.text(), "m.weight");
  ASSERT_EQ(r.get<uint32_t>(), 2u);
  EXPECT_EQ(r.get<uint64_t>(), 64u);
  EXPECT_EQ(r.get<uint64_t>(), 2u);
  EXPECT_EQ(r.get<uint32_t>(), 8u);
  EXPECT_EQ(r.get<uint64_t>(), 32u);
  const size_t data = (r.at + 31) / 32 * 32;
  ASSERT_EQ(r.bytes.size(), data + 32 + 160);  // 2 rows of 68 bytes, padded to the alignment as every tensor
  float first[3];
  std::memcpy(first, r.bytes.data() + data, 12);
  EXPECT_EQ(first[2], 3.0f);
  std::vector<float> back(128);
  dequantize_q8_0(r.bytes.data() + data + 32, back);
  EXPECT_NEAR(back[127], matrix[127], 1.27f / 127);
  std::filesystem::remove(path);
}

TEST(GgufFile, ATensorOfTheWrongSizeLeavesNoFile) {
  const std::string path = (std::filesystem::temp_directory_path() / "quantlab_gguf_bad.gguf").string();
  GgufWriter writer;
  writer.add_tensor({"x", GgmlType::kF16, {4}, [](std::vector<uint8_t>& out) { out.resize(6); }});
  EXPECT_ANY_THROW(writer.write(path));
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

}  // namespace
}  // namespace quantlab::peer
