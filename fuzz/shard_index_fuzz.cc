// model.safetensors.index.json from a stranger, beside two valid shards: the weight map must name
// files that exist and tensors that are in them; names like "../x" must not reach outside the folder.
#include "fuzz_support.h"
#include "io/safetensors.h"

namespace {

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A one-tensor F32 shard: `name` of shape [2].
std::string shard(const std::string& name) {
  const std::string header = R"({")" + name + R"(": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})";
  return le64(header.size()) + header + std::string(8, '\0');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace quantlab;
  const auto& dir = fuzz::scratch();
  dir.clear();
  dir.write("model-00001-of-00002.safetensors", shard("model.embed_tokens.weight"));
  dir.write("model-00002-of-00002.safetensors", shard("model.norm.weight"));
  dir.write("model.safetensors.index.json", {reinterpret_cast<const char*>(data), size});
  fuzz::parses_or_refuses([&] {
    const io::ModelWeights weights = io::ModelWeights::open(dir.path().string());
    for (const std::string& name : weights.names()) {
      const auto& entry = weights.at(name);
      fuzz::require(entry.info->name == name, "entry names its tensor");
      fuzz::require(weights.bytes(entry).size() == entry.info->nbytes, "span size");
    }
  });
  return 0;
}
