// Writes a Qwen3 (dense) safetensors checkpoint as a GGUF file that llama.cpp loads, with the same
// weights quantlab runs: F16, or ggml's Q8_0 / Q4_0 (8.5 and 4.5 bits per weight, as MLX's 8-bit and
// 4-bit with groups of 64). For the same-run peer benchmark (benchmarks/peer/peer_bench.sh); not part
// of the product.
//
//   gguf_export MODEL_DIR OUT.gguf --type f16|q8_0|q4_0 --tokenizer tokenizer.json
//
// Every matrix (embedding included) is stored in the chosen type, norms in F32: a "pure" file, so that
// the bits per weight match quantlab's uniform widths (llama-quantize would keep some tensors wider).
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>

#include "core/error.h"
#include "io/model_config.h"
#include "io/safetensors.h"
#include "peer/gguf.h"
#include "quant/convert.h"

namespace {

using namespace quantlab;
using peer::GgmlType;

// HF Qwen3 tensor names (after "model.layers.N.") to llama.cpp's (after "blk.N.").
const std::map<std::string, std::string> kLayerNames = {
    {"input_layernorm.weight", "attn_norm.weight"},   {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},     {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"}, {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"}, {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},      {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};

std::string gguf_name(const std::string& hf) {
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return "output.weight";
  const std::string prefix = "model.layers.";
  if (hf.starts_with(prefix)) {
    const size_t dot = hf.find('.', prefix.size());
    const auto it = kLayerNames.find(hf.substr(dot + 1));
    if (dot != std::string::npos && it != kLayerNames.end())
      return fmt::format("blk.{}.{}", hf.substr(prefix.size(), dot - prefix.size()), it->second);
  }
  fail(ErrorKind::kUnsupported, "tensor {}: no GGUF name for it (only dense Qwen3 checkpoints are exported)", hf);
}

GgmlType parse_type(const std::string& name) {
  if (name == "f16") return GgmlType::kF16;
  if (name == "q8_0") return GgmlType::kQ8_0;
  if (name == "q4_0") return GgmlType::kQ4_0;
  fail(ErrorKind::kUsage, "--type {}: expected f16, q8_0 or q4_0", name);
}

uint32_t file_type(GgmlType type) {  // llama.cpp's LLAMA_FTYPE_* for a file of one type
  return type == GgmlType::kF16 ? 1 : type == GgmlType::kQ8_0 ? 7 : 2;
}

// The BPE vocabulary as GGUF's tokenizer.ggml.* arrays, padded to the embedding's rows.
void add_tokenizer(peer::GgufWriter& gguf, const std::string& path, const io::ModelConfig& config) {
  std::ifstream in(path);
  if (!in) fail(ErrorKind::kIo, "cannot read {}", path);
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.contains("model") || !j["model"].contains("vocab"))
    fail(ErrorKind::kInvalidInput, "{}: not a tokenizer.json with model.vocab", path);
  std::vector<std::string> tokens(config.vocab_size);
  std::vector<int32_t> types(config.vocab_size, 5);  // 5 = unused (padding rows)
  for (int64_t i = 0; i < config.vocab_size; ++i) tokens[i] = fmt::format("[PAD{}]", i);
  const auto place = [&](int64_t id, const std::string& text, int32_t type) {
    if (id < 0 || id >= config.vocab_size) fail(ErrorKind::kInvalidInput, "{}: token id {} outside the vocabulary", path, id);
    tokens[id] = text;
    types[id] = type;
  };
  for (const auto& [text, id] : j["model"]["vocab"].items()) place(id.get<int64_t>(), text, 1);  // 1 = normal
  for (const auto& added : j.value("added_tokens", nlohmann::json::array()))
    place(added["id"].get<int64_t>(), added["content"].get<std::string>(), added.value("special", false) ? 3 : 4);
  std::vector<std::string> merges;
  for (const auto& m : j["model"].value("merges", nlohmann::json::array()))
    merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
  gguf.set("tokenizer.ggml.model", std::string("gpt2"));
  gguf.set("tokenizer.ggml.pre", std::string("qwen2"));
  gguf.set("tokenizer.ggml.tokens", tokens);
  gguf.set("tokenizer.ggml.token_type", types);
  gguf.set("tokenizer.ggml.merges", merges);
  // Qwen3 has no BOS (add_bos_token false); configs without one get the end-of-sequence token, which
  // llama.cpp then never inserts.
  const int64_t eos = config.eos_token_ids.empty() ? 0 : config.eos_token_ids.front();
  const int64_t bos = config.bos_token_id.value_or(eos);
  for (int64_t id : {eos, bos})
    if (id < 0 || id >= config.vocab_size) fail(ErrorKind::kInvalidInput, "{}: special token id {} outside the vocabulary", config.path, id);
  gguf.set("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(bos));
  gguf.set("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(bos));
  gguf.set("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(eos));
  gguf.set("tokenizer.ggml.add_bos_token", false);
}

void add_hyperparameters(peer::GgufWriter& gguf, const io::ModelConfig& c, GgmlType type) {
  gguf.set("general.architecture", std::string("qwen3"));
  gguf.set("general.name", std::string("quantlab peer benchmark"));
  gguf.set("general.file_type", file_type(type));
  gguf.set("general.alignment", static_cast<uint32_t>(peer::kGgufAlignment));
  gguf.set("qwen3.block_count", static_cast<uint32_t>(c.num_hidden_layers));
  gguf.set("qwen3.context_length", static_cast<uint32_t>(c.max_position_embeddings));
  gguf.set("qwen3.embedding_length", static_cast<uint32_t>(c.hidden_size));
  gguf.set("qwen3.feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  gguf.set("qwen3.attention.head_count", static_cast<uint32_t>(c.num_attention_heads));
  gguf.set("qwen3.attention.head_count_kv", static_cast<uint32_t>(c.num_key_value_heads));
  gguf.set("qwen3.attention.key_length", static_cast<uint32_t>(c.head_dim));
  gguf.set("qwen3.attention.value_length", static_cast<uint32_t>(c.head_dim));
  gguf.set("qwen3.rope.freq_base", static_cast<float>(c.rope_theta));
  gguf.set("qwen3.attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
}

void add_tensors(peer::GgufWriter& gguf, const io::ModelWeights& weights, GgmlType type) {
  for (const std::string& name : weights.names()) {
    const io::ModelWeights::Entry& entry = weights.at(name);
    const io::TensorInfo& info = *entry.info;
    if (!is_float(info.dtype)) fail(ErrorKind::kUnsupported, "tensor {}: {} is not a float dtype", name, dtype_name(info.dtype));
    const bool matrix = info.shape.size() == 2;
    peer::GgufTensor tensor{gguf_name(name), matrix ? type : GgmlType::kF32, info.shape, {}};
    tensor.produce = [&weights, &entry, type = tensor.type, cols = info.shape.back()](std::vector<uint8_t>& out) {
      const std::span<const uint8_t> bytes = weights.bytes(entry);
      const size_t in_row = cols * dtype_size(entry.info->dtype), out_row = peer::ggml_row_bytes(type, cols);
      const size_t rows = bytes.size() / in_row;
      std::vector<float> row(cols);
      out.resize(rows * out_row);
      for (size_t r = 0; r < rows; ++r) {
        quant::load_as_f32_scalar(entry.info->dtype, bytes.data() + r * in_row, cols, row.data());
        peer::encode_row(type, row, out.data() + r * out_row);
      }
    };
    gguf.add_tensor(std::move(tensor));
  }
}

void run(const std::string& model_dir, const std::string& out, const std::string& type_name, const std::string& tokenizer) {
  const GgmlType type = parse_type(type_name);
  const io::ModelConfig config = io::load_model_config(model_dir);
  if (config.model_type != "qwen3")
    fail(ErrorKind::kUnsupported, "{}: model_type {}; the exporter writes dense Qwen3 only", config.path, config.model_type);
  const io::ModelWeights weights = io::ModelWeights::open(model_dir);
  peer::GgufWriter gguf;
  add_hyperparameters(gguf, config, type);
  add_tokenizer(gguf, tokenizer, config);
  add_tensors(gguf, weights, type);
  gguf.write(out);
  fmt::print("{}: {} tensors as {}\n", out, weights.size(), peer::ggml_type_name(type));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Write a dense Qwen3 safetensors checkpoint as GGUF (F16, Q8_0, Q4_0) for the peer benchmark"};
  std::string model, out, type = "f16", tokenizer;
  app.add_option("model", model, "Model directory (config.json + safetensors)")->required();
  app.add_option("out", out, "GGUF file to write")->required();
  app.add_option("--type", type, "f16, q8_0 or q4_0");
  app.add_option("--tokenizer", tokenizer, "tokenizer.json whose vocabulary goes into the file")->required();
  try {
    app.parse(argc, argv);
    run(model, out, type, tokenizer);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const Error& e) {
    fmt::print(stderr, "quantlab: error: {}\n", e.what());
    return e.exit_code();
  }
  return 0;
}
