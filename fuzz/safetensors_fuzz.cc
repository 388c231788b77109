// A safetensors file from a stranger: header length, JSON header, dtypes, shapes, offsets, metadata.
// Whatever the header claims, every span handed out must lie inside the file (ASan checks the reads).
#include "fuzz_support.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace quantlab;
  const auto& dir = fuzz::scratch();
  dir.clear();
  const std::string path = dir.write("model.safetensors", {reinterpret_cast<const char*>(data), size});
  fuzz::parses_or_refuses([&] {
    const io::SafetensorsFile file(path);
    uint8_t sum = 0;
    for (const io::TensorInfo& t : file.tensors()) {
      const auto bytes = file.bytes(t);
      fuzz::require(bytes.size() == t.nbytes, "span size equals the tensor's byte count");
      fuzz::require(t.offset + t.nbytes <= file.file_size(), "tensor inside the file");
      if (!bytes.empty()) sum ^= bytes.front() ^ bytes.back();
      fuzz::require(file.find(t.name) == &t, "find returns the tensor");
    }
    for (const auto& [key, value] : file.metadata()) sum ^= static_cast<uint8_t>(key.size() + value.size());
    (void)sum;
  });
  return 0;
}
