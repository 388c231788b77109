// Inputs the benchmarks share: a text of about N tokens from the bundled corpus, and the bundled
// tool-calling tokenizer copied into a synthetic model (its ids are valid in the larger vocabularies).
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace quantlab::benchmarks {

inline const std::filesystem::path kToolCalling = std::filesystem::path(QUANTLAB_SOURCE_DIR) / "tests/data/tool-calling";

inline std::string prepare_text(const std::string& work, size_t tokens) {
  const std::string path = work + "/text.txt";
  std::ifstream in(std::filesystem::path(QUANTLAB_SOURCE_DIR) / "tests/data/generator/corpus.jsonl");
  std::string corpus((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(path) << corpus.substr(0, tokens * 3);  // about 3 characters per token of this tokenizer
  return path;
}

inline void copy_tokenizer(const std::string& model_dir) {
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    std::filesystem::copy_file(kToolCalling / "dense-fused-strong-f16" / f, std::filesystem::path(model_dir) / f,
                               std::filesystem::copy_options::overwrite_existing);
}

}  // namespace quantlab::benchmarks
