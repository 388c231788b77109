// Published configs, from model-spec.md §1.3 (the Hub's config.json files, transformers v4 spelling).
#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "quant/synth.h"

namespace quantlab::quant {

namespace {

using ojson = nlohmann::ordered_json;

ojson qwen3_common() {
  return {{"attention_bias", false},
          {"attention_dropout", 0.0},
          {"bos_token_id", 151643},
          {"eos_token_id", 151645},
          {"head_dim", 128},
          {"hidden_act", "silu"},
          {"initializer_range", 0.02},
          {"max_position_embeddings", 40960},
          {"rms_norm_eps", 1e-6},
          {"rope_scaling", nullptr},
          {"rope_theta", 1000000.0},
          {"sliding_window", nullptr},
          {"use_cache", true},
          {"use_sliding_window", false},
          {"vocab_size", 151936}};
}

ojson qwen3_dense(int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads, bool tied) {
  ojson j = {{"architectures", {"Qwen3ForCausalLM"}}, {"model_type", "qwen3"}};
  j.update(qwen3_common());
  j.update(ojson{{"hidden_size", hidden}, {"intermediate_size", intermediate}, {"num_hidden_layers", layers},
                 {"max_window_layers", layers}, {"num_attention_heads", heads}, {"num_key_value_heads", 8},
                 {"tie_word_embeddings", tied}});
  return j;
}

ojson qwen3_30b_a3b() {
  ojson j = {{"architectures", {"Qwen3MoeForCausalLM"}}, {"model_type", "qwen3_moe"}};
  j.update(qwen3_common());
  j.update(ojson{{"hidden_size", 2048}, {"intermediate_size", 6144}, {"num_hidden_layers", 48},
                 {"max_window_layers", 48}, {"num_attention_heads", 32}, {"num_key_value_heads", 4},
                 {"tie_word_embeddings", false}, {"num_experts", 128}, {"num_experts_per_tok", 8},
                 {"moe_intermediate_size", 768}, {"norm_topk_prob", true}, {"decoder_sparse_step", 1},
                 {"mlp_only_layers", ojson::array()}, {"output_router_logits", false},
                 {"router_aux_loss_coef", 0.001}});
  return j;
}

ojson llama_3_2_1b() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"attention_bias", false},
          {"bos_token_id", 128000},
          {"eos_token_id", 128001},
          {"head_dim", 64},
          {"hidden_act", "silu"},
          {"hidden_size", 2048},
          {"intermediate_size", 8192},
          {"max_position_embeddings", 131072},
          {"mlp_bias", false},
          {"num_attention_heads", 32},
          {"num_hidden_layers", 16},
          {"num_key_value_heads", 8},
          {"rms_norm_eps", 1e-5},
          {"rope_scaling",
           {{"factor", 32.0}, {"high_freq_factor", 4.0}, {"low_freq_factor", 1.0},
            {"original_max_position_embeddings", 8192}, {"rope_type", "llama3"}}},
          {"rope_theta", 500000.0},
          {"tie_word_embeddings", true},
          {"vocab_size", 128256}};
}

// Qwen2.5-*-Instruct config.json (transformers v4 spelling): q/k/v biases are implied by the family.
ojson qwen2_5(int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads, int64_t kv_heads,
              int64_t max_window_layers, bool tied, int64_t vocab) {
  return {{"architectures", {"Qwen2ForCausalLM"}},
          {"attention_dropout", 0.0},
          {"bos_token_id", 151643},
          {"eos_token_id", 151645},
          {"hidden_act", "silu"},
          {"hidden_size", hidden},
          {"initializer_range", 0.02},
          {"intermediate_size", intermediate},
          {"max_position_embeddings", 32768},
          {"max_window_layers", max_window_layers},
          {"model_type", "qwen2"},
          {"num_attention_heads", heads},
          {"num_hidden_layers", layers},
          {"num_key_value_heads", kv_heads},
          {"rms_norm_eps", 1e-6},
          {"rope_scaling", nullptr},
          {"rope_theta", 1000000.0},
          {"sliding_window", 32768},
          {"tie_word_embeddings", tied},
          {"use_cache", true},
          {"use_sliding_window", false},
          {"vocab_size", vocab}};
}

ojson preset(std::string_view like) {
  if (like == "qwen3-0.6b") return qwen3_dense(1024, 3072, 28, 16, true);
  if (like == "qwen3-8b") return qwen3_dense(4096, 12288, 36, 32, false);
  if (like == "qwen3-30b-a3b") return qwen3_30b_a3b();
  if (like == "llama-3.2-1b") return llama_3_2_1b();
  if (like == "qwen2.5-0.5b") return qwen2_5(896, 4864, 24, 14, 2, 21, true, 151936);
  if (like == "qwen2.5-3b") return qwen2_5(2048, 11008, 36, 16, 2, 70, true, 151936);
  if (like == "qwen2.5-7b") return qwen2_5(3584, 18944, 28, 28, 4, 28, false, 152064);
  fail(ErrorKind::kUsage, "--like {}: unknown model (choose one of {})", like, fmt::join(synth_preset_names(), ", "));
}

}  // namespace

std::vector<std::string> synth_preset_names() {
  return {"qwen3-0.6b", "qwen3-8b", "qwen3-30b-a3b", "llama-3.2-1b", "qwen2.5-0.5b", "qwen2.5-3b", "qwen2.5-7b"};
}

nlohmann::ordered_json synth_config(std::string_view like, std::optional<int64_t> layers, DType dtype) {
  ojson j = preset(like);
  if (layers) set_layer_count(j, *layers);
  j["torch_dtype"] = float_dtype_config_name(dtype);
  j["transformers_version"] = "4.51.0";
  return j;
}

void set_layer_count(nlohmann::ordered_json& j, int64_t layers) {
  if (layers < 1) fail(ErrorKind::kUsage, "--layers {}: need at least one layer", layers);
  j["num_hidden_layers"] = layers;
  if (j.contains("max_window_layers")) j["max_window_layers"] = layers;
  if (j.contains("layer_types") && j["layer_types"].is_array() && !j["layer_types"].empty()) {
    ojson types = ojson::array();
    for (int64_t i = 0; i < layers; ++i) types.push_back(j["layer_types"][std::min<size_t>(i, j["layer_types"].size() - 1)]);
    j["layer_types"] = types;
  }
  if (j.contains("mlp_only_layers") && j["mlp_only_layers"].is_array()) {
    ojson kept = ojson::array();
    for (const auto& l : j["mlp_only_layers"])
      if (l.is_number_integer() && l.get<int64_t>() < layers) kept.push_back(l);
    j["mlp_only_layers"] = kept;
  }
}

nlohmann::ordered_json synth_generation_config(const nlohmann::ordered_json& config) {
  ojson g = ojson::object();
  if (config.contains("bos_token_id")) g["bos_token_id"] = config["bos_token_id"];
  const std::string type = config.value("model_type", "");
  const bool qwen = type.rfind("qwen3", 0) == 0 || type == "qwen2";
  const bool has_ids = config.contains("bos_token_id") && config.contains("eos_token_id") &&
                       !config["bos_token_id"].is_null() && !config["eos_token_id"].is_null();
  if (qwen && has_ids) {
    // Qwen3's and Qwen2.5-Instruct's generation_config.json (model-spec.md §1.3): stop on <|im_end|>
    // (config eos) or on <|endoftext|> (config bos), pad with <|endoftext|>; their sampling defaults
    // (Qwen3's thinking mode; Qwen2.5's with its repetition penalty).
    g.update(ojson{{"do_sample", true}, {"eos_token_id", {config["eos_token_id"], config["bos_token_id"]}},
                   {"pad_token_id", config["bos_token_id"]}});
    if (type == "qwen2")
      g.update(ojson{{"repetition_penalty", 1.05}, {"temperature", 0.7}, {"top_k", 20}, {"top_p", 0.8}});
    else
      g.update(ojson{{"temperature", 0.6}, {"top_k", 20}, {"top_p", 0.95}});
  } else if (config.contains("eos_token_id")) {
    g["eos_token_id"] = config["eos_token_id"];
  }
  return g;
}

}  // namespace quantlab::quant
