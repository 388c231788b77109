#include "gguf.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/half.h"

namespace quantlab::peer {
namespace {

constexpr uint32_t kGgufVersion = 3;
constexpr uint64_t kQ8Bytes = 2 + kGgmlBlock;      // float16 scale + 32 int8
constexpr uint64_t kQ4Bytes = 2 + kGgmlBlock / 2;  // float16 scale + 32 nibbles

// GGUF value type tags.
enum : uint32_t { kU32 = 4, kI32 = 5, kF32Tag = 6, kBool = 7, kString = 8, kArray = 9 };

void check_blocks(size_t n) {
  if (n % kGgmlBlock != 0) fail(ErrorKind::kInvalidInput, "ggml block formats need a multiple of 32 values, got {}", n);
}

void put_half(uint8_t* out, float d) {
  const uint16_t h = f32_to_f16(d);
  std::memcpy(out, &h, 2);
}

float get_half(const uint8_t* in) {
  uint16_t h;
  std::memcpy(&h, in, 2);
  return f16_to_f32(h);
}

// Little-endian serialisation into a byte buffer (GGUF is little-endian; so is every target we build).
class Bytes {
 public:
  template <typename T>
  void put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    data.insert(data.end(), p, p + sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    data.insert(data.end(), s.begin(), s.end());
  }
  void pad_to(uint64_t alignment) { data.resize((data.size() + alignment - 1) / alignment * alignment, 0); }
  std::vector<uint8_t> data;
};

void put_value(Bytes& b, const GgufValue& value) {
  struct Visitor {
    Bytes& b;
    void operator()(uint32_t v) { b.put<uint32_t>(kU32); b.put(v); }
    void operator()(int32_t v) { b.put<uint32_t>(kI32); b.put(v); }
    void operator()(float v) { b.put<uint32_t>(kF32Tag); b.put(v); }
    void operator()(bool v) { b.put<uint32_t>(kBool); b.put<uint8_t>(v ? 1 : 0); }
    void operator()(const std::string& v) { b.put<uint32_t>(kString); b.put_string(v); }
    void operator()(const std::vector<std::string>& v) {
      b.put<uint32_t>(kArray);
      b.put<uint32_t>(kString);
      b.put<uint64_t>(v.size());
      for (const std::string& s : v) b.put_string(s);
    }
    void operator()(const std::vector<int32_t>& v) {
      b.put<uint32_t>(kArray);
      b.put<uint32_t>(kI32);
      b.put<uint64_t>(v.size());
      for (int32_t x : v) b.put(x);
    }
  };
  std::visit(Visitor{b}, value);
}

uint64_t aligned(uint64_t n) { return (n + kGgufAlignment - 1) / kGgufAlignment * kGgufAlignment; }

}  // namespace

uint64_t ggml_row_bytes(GgmlType type, int64_t n) {
  switch (type) {
    case GgmlType::kF32: return 4 * n;
    case GgmlType::kF16: return 2 * n;
    case GgmlType::kQ8_0: check_blocks(n); return n / kGgmlBlock * kQ8Bytes;
    case GgmlType::kQ4_0: check_blocks(n); return n / kGgmlBlock * kQ4Bytes;
  }
  fail(ErrorKind::kInternal, "unknown ggml type {}", static_cast<uint32_t>(type));
}

const char* ggml_type_name(GgmlType type) {
  switch (type) {
    case GgmlType::kF32: return "F32";
    case GgmlType::kF16: return "F16";
    case GgmlType::kQ8_0: return "Q8_0";
    case GgmlType::kQ4_0: return "Q4_0";
  }
  return "?";
}

void quantize_q8_0(std::span<const float> x, uint8_t* out) {
  check_blocks(x.size());
  for (size_t b = 0; b < x.size(); b += kGgmlBlock, out += kQ8Bytes) {
    float amax = 0;
    for (int64_t j = 0; j < kGgmlBlock; ++j) amax = std::max(amax, std::fabs(x[b + j]));
    const float d = amax / 127.0f;
    const float inverse = d != 0 ? 1.0f / d : 0.0f;
    put_half(out, d);
    for (int64_t j = 0; j < kGgmlBlock; ++j)
      out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[b + j] * inverse)));
  }
}

void quantize_q4_0(std::span<const float> x, uint8_t* out) {
  check_blocks(x.size());
  for (size_t b = 0; b < x.size(); b += kGgmlBlock, out += kQ4Bytes) {
    float amax = 0, extreme = 0;  // the first value of largest magnitude, with its sign
    for (int64_t j = 0; j < kGgmlBlock; ++j) {
      if (amax < std::fabs(x[b + j])) {
        amax = std::fabs(x[b + j]);
        extreme = x[b + j];
      }
    }
    const float d = extreme / -8.0f;
    const float inverse = d != 0 ? 1.0f / d : 0.0f;
    put_half(out, d);
    const auto code = [&](float v) {
      // Truncation toward zero of v/d + 8.5 (always >= 0.5 here) rounds to nearest; 16 is clamped.
      return static_cast<uint8_t>(std::min<int>(15, static_cast<int8_t>(v * inverse + 8.5f)));
    };
    for (int64_t j = 0; j < kGgmlBlock / 2; ++j)
      out[2 + j] = static_cast<uint8_t>(code(x[b + j]) | (code(x[b + j + kGgmlBlock / 2]) << 4));
  }
}

void dequantize_q8_0(const uint8_t* blocks, std::span<float> out) {
  check_blocks(out.size());
  for (size_t b = 0; b < out.size(); b += kGgmlBlock, blocks += kQ8Bytes) {
    const float d = get_half(blocks);
    for (int64_t j = 0; j < kGgmlBlock; ++j) out[b + j] = d * static_cast<int8_t>(blocks[2 + j]);
  }
}

void dequantize_q4_0(const uint8_t* blocks, std::span<float> out) {
  check_blocks(out.size());
  for (size_t b = 0; b < out.size(); b += kGgmlBlock, blocks += kQ4Bytes) {
    const float d = get_half(blocks);
    for (int64_t j = 0; j < kGgmlBlock / 2; ++j) {
      out[b + j] = d * ((blocks[2 + j] & 15) - 8);
      out[b + j + kGgmlBlock / 2] = d * ((blocks[2 + j] >> 4) - 8);
    }
  }
}

void encode_row(GgmlType type, std::span<const float> x, uint8_t* out) {
  switch (type) {
    case GgmlType::kF32: std::memcpy(out, x.data(), x.size() * 4); return;
    case GgmlType::kF16:
      for (size_t i = 0; i < x.size(); ++i) put_half(out + 2 * i, x[i]);
      return;
    case GgmlType::kQ8_0: quantize_q8_0(x, out); return;
    case GgmlType::kQ4_0: quantize_q4_0(x, out); return;
  }
}

uint64_t GgufTensor::bytes() const {
  if (shape.empty()) fail(ErrorKind::kInternal, "tensor {} has no shape", name);
  uint64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
  return rows * ggml_row_bytes(type, shape.back());
}

void GgufWriter::set(const std::string& key, GgufValue value) { values_.emplace_back(key, std::move(value)); }

void GgufWriter::add_tensor(GgufTensor tensor) { tensors_.push_back(std::move(tensor)); }

void GgufWriter::write(const std::string& path) const {
  Bytes header;
  header.put<uint32_t>(0x46554747);  // "GGUF" read as a little-endian u32
  header.put<uint32_t>(kGgufVersion);
  header.put<uint64_t>(tensors_.size());
  header.put<uint64_t>(values_.size());
  for (const auto& [key, value] : values_) {
    header.put_string(key);
    put_value(header, value);
  }
  uint64_t offset = 0;
  for (const GgufTensor& t : tensors_) {
    header.put_string(t.name);
    header.put<uint32_t>(t.shape.size());
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) header.put<uint64_t>(*it);
    header.put<uint32_t>(static_cast<uint32_t>(t.type));
    header.put<uint64_t>(offset);
    offset = aligned(offset + t.bytes());
  }
  header.pad_to(kGgufAlignment);

  const std::string temporary = path + ".tmp";
  std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
  if (!out) fail(ErrorKind::kIo, "cannot create {}", temporary);
  out.write(reinterpret_cast<const char*>(header.data.data()), header.data.size());
  std::vector<uint8_t> data;
  for (const GgufTensor& t : tensors_) {
    data.clear();
    t.produce(data);
    if (data.size() != t.bytes()) {
      out.close();
      std::filesystem::remove(temporary);
      fail(ErrorKind::kInternal, "tensor {}: produced {} bytes, its shape needs {}", t.name, data.size(), t.bytes());
    }
    data.resize(aligned(data.size()), 0);
    out.write(reinterpret_cast<const char*>(data.data()), data.size());
  }
  out.close();
  if (!out) {
    std::filesystem::remove(temporary);
    fail(ErrorKind::kIo, "writing {} failed (disk full?)", temporary);
  }
  std::filesystem::rename(temporary, path);
}

}  // namespace quantlab::peer
