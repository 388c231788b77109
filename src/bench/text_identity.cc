#include "bench/text_identity.h"

#include <fmt/format.h>

#include <exception>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"

namespace quantlab::bench {

namespace {

std::string fnv1a_hex(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  return fmt::format("{:016x}", h);
}

std::string digest_of_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return "";
  try {
    return fnv1a_hex(read_text_file(path.string()));
  } catch (const std::exception&) {
    return "";
  }
}

// The template as transformers picks it: chat_template.jinja wins over tokenizer_config.json's.
std::string template_digest(const std::filesystem::path& dir) {
  if (std::string d = digest_of_file(dir / "chat_template.jinja"); !d.empty()) return d;
  std::error_code ec;
  if (!std::filesystem::exists(dir / "tokenizer_config.json", ec)) return "";
  try {
    const auto config = nlohmann::json::parse(read_text_file((dir / "tokenizer_config.json").string()));
    const auto it = config.find("chat_template");
    return it == config.end() || it->is_null() ? "" : fnv1a_hex(it->dump());
  } catch (const std::exception&) {
    return "";
  }
}

}  // namespace

TextIdentity text_identity(const std::string& model_dir) {
  const std::filesystem::path dir(model_dir);
  return {digest_of_file(dir / "tokenizer.json"), template_digest(dir)};
}

void add_text_identities(eval::BenchResults& results) {
  for (eval::ModelResult& m : results.models) {
    if (!m.ok) continue;
    TextIdentity t = text_identity(m.dir);
    m.info.tokenizer_digest = std::move(t.tokenizer_digest);
    m.info.chat_template_digest = std::move(t.chat_template_digest);
  }
}

}  // namespace quantlab::bench
