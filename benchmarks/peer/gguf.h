// GGUF (llama.cpp's model file) writing, for the same-run peer benchmark only (benchmarks/peer/): the
// product never reads or writes GGUF. Written from the format's description (ggml's docs/gguf.md):
//   header   "GGUF", version 3, tensor count (u64), key/value count (u64)
//   keys     string key, u32 value type, value (strings: u64 length + bytes; arrays: u32 element type,
//            u64 count, elements)
//   tensors  name, u32 dims, u64 extents innermost first, u32 ggml type, u64 offset into the data
//   data     aligned to general.alignment (32), each tensor at its offset, each offset aligned too
// Block formats, 32 values per block, the scale a float16:
//   Q8_0  d = amax / 127, q = round(x / d)                       34 bytes: d, int8 q[32]
//   Q4_0  d = m / -8 with m the value of largest magnitude (its sign kept), q = min(15, trunc(x/d + 8.5))
//         18 bytes: d, then byte j holds q[j] in its low nibble and q[j + 16] in its high one
// These are ggml's reference ("_ref") quantizers' arithmetic, which its converters use to write files.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace quantlab::peer {

enum class GgmlType : uint32_t { kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ8_0 = 8 };

inline constexpr int64_t kGgmlBlock = 32;
inline constexpr uint64_t kGgufAlignment = 32;

// Bytes of one row of `n` values (n a multiple of 32 for the block types).
uint64_t ggml_row_bytes(GgmlType type, int64_t n);
const char* ggml_type_name(GgmlType type);

// Quantize `x` (a multiple of 32 values) into blocks at `out` (ggml_row_bytes(type, x.size()) bytes).
void quantize_q8_0(std::span<const float> x, uint8_t* out);
void quantize_q4_0(std::span<const float> x, uint8_t* out);
// The values a block file stores, for tests: out[i] = d * q[i] (Q8_0) or d * (q[i] - 8) (Q4_0).
void dequantize_q8_0(const uint8_t* blocks, std::span<float> out);
void dequantize_q4_0(const uint8_t* blocks, std::span<float> out);
// Encode float32 values as `type` (any of the four).
void encode_row(GgmlType type, std::span<const float> x, uint8_t* out);

using GgufValue = std::variant<uint32_t, int32_t, float, bool, std::string, std::vector<std::string>,
                               std::vector<int32_t>>;

struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::kF32;
  std::vector<int64_t> shape;  // outermost first, as in safetensors ([rows, cols]); stored reversed
  // Writes the tensor's bytes (rows of `shape.back()` values, encoded as `type`) to `out`.
  std::function<void(std::vector<uint8_t>& out)> produce;
  uint64_t bytes() const;
};

class GgufWriter {
 public:
  void set(const std::string& key, GgufValue value);
  void add_tensor(GgufTensor tensor);
  // Writes the file through `path`.tmp and a rename, so a failure leaves no partial file.
  void write(const std::string& path) const;

 private:
  std::vector<std::pair<std::string, GgufValue>> values_;
  std::vector<GgufTensor> tensors_;
};

}  // namespace quantlab::peer
