// Bad input through the real binary: each case must fail with a message naming the file, tensor or
// key, a non-zero exit code that says what kind of failure it was, and no output left behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_support.h"

namespace quantlab::testing {
namespace {

namespace fs = std::filesystem;

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file from a header text and data bytes (header length may be overridden).
std::string safetensors(const std::string& header, const std::string& data, int64_t length_override = -1) {
  return le64(length_override >= 0 ? static_cast<uint64_t>(length_override) : header.size()) + header + data;
}

const char* kConfig = R"({"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "vocab_size": 64,
  "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
  "num_key_value_heads": 1, "head_dim": 16, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
  "tie_word_embeddings": true, "torch_dtype": "float32"})";

// kConfig as a Qwen3-MoE model with `experts` experts, one per token.
std::string moe_config(int experts) {
  auto cfg = nlohmann::json::parse(kConfig);
  cfg["model_type"] = "qwen3_moe";
  cfg["architectures"] = {"Qwen3MoeForCausalLM"};
  cfg["num_experts"] = experts;
  cfg["num_experts_per_tok"] = 1;
  cfg["moe_intermediate_size"] = 32;
  return cfg.dump();
}

class MalformedInput : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir());
    write_file(dir() + "/config.json", kConfig);
  }
  std::string dir() const { return tmp_ / "in"; }
  std::string out() const { return tmp_ / "out"; }
  void weights(const std::string& bytes, const std::string& name = "model.safetensors") {
    write_file(dir() + "/" + name, bytes);
  }
  // Runs quantize and checks the failure contract.
  void expect_failure(int code, const std::vector<std::string>& needles, const std::string& extra = "") {
    const auto r = run_quantlab("quantize " + shell_quote(dir()) + " " + shell_quote(out()) + " --quiet " + extra);
    EXPECT_EQ(r.exit_code, code) << r.err;
    for (const auto& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "missing '" << n << "' in: " << r.err;
    EXPECT_FALSE(fs::exists(out())) << "partial output left behind";
    for (const auto& e : fs::directory_iterator(tmp_.path()))
      EXPECT_EQ(e.path().filename().string().find(".out.tmp"), std::string::npos) << "temp dir left: " << e.path();
  }
  TempDir tmp_;
};

const std::string kNorm = R"("model.norm.weight": {"dtype": "F32", "shape": [32], "data_offsets": [0, 128]})";
const std::string kNormData(128, '\0');

TEST_F(MalformedInput, FileShorterThanHeaderLength) {
  weights("abc");
  expect_failure(kInvalid, {"model.safetensors", "shorter than the 8-byte"});
}

TEST_F(MalformedInput, HeaderLengthPastEndOfFile) {
  weights(safetensors("{" + kNorm + "}", kNormData, 100000));
  expect_failure(kInvalid, {"model.safetensors", "past the end"});
}

TEST_F(MalformedInput, HeaderLengthAbsurd) {
  weights(safetensors("{}", "", int64_t{1} << 40));
  expect_failure(kInvalid, {"model.safetensors", "exceeds"});
}

TEST_F(MalformedInput, HeaderNotJson) {
  weights(safetensors("{\"a\": [1, 2", kNormData));
  expect_failure(kInvalid, {"model.safetensors", "not valid JSON"});
}

TEST_F(MalformedInput, HeaderNotObject) {
  weights(safetensors("[1, 2, 3]", kNormData));
  expect_failure(kInvalid, {"model.safetensors", "not a JSON object"});
}

TEST_F(MalformedInput, TensorEntryMissingDtype) {
  weights(safetensors(R"({"model.norm.weight": {"shape": [32], "data_offsets": [0, 128]}})", kNormData));
  expect_failure(kInvalid, {"model.norm.weight", "dtype, shape and data_offsets"});
}

TEST_F(MalformedInput, UnsupportedDtypeNamed) {
  weights(safetensors(R"({"model.norm.weight": {"dtype": "F64", "shape": [16], "data_offsets": [0, 128]}})", kNormData));
  expect_failure(kUnsupported, {"model.norm.weight", "F64"});
}

TEST_F(MalformedInput, NegativeShape) {
  weights(safetensors(R"({"model.norm.weight": {"dtype": "F32", "shape": [-32], "data_offsets": [0, 128]}})", kNormData));
  expect_failure(kInvalid, {"model.norm.weight", "shape"});
}

TEST_F(MalformedInput, ReversedOffsets) {
  weights(safetensors(R"({"model.norm.weight": {"dtype": "F32", "shape": [32], "data_offsets": [128, 0]}})", kNormData));
  expect_failure(kInvalid, {"model.norm.weight", "reversed"});
}

TEST_F(MalformedInput, ShapeDisagreesWithByteSpan) {
  weights(safetensors(R"({"model.norm.weight": {"dtype": "F32", "shape": [33], "data_offsets": [0, 128]}})", kNormData));
  expect_failure(kInvalid, {"model.norm.weight", "needs 132 bytes"});
}

TEST_F(MalformedInput, TruncatedData) {
  weights(safetensors("{" + kNorm + "}", std::string(100, '\0')));
  expect_failure(kInvalid, {"model.norm.weight", "truncated"});
}

TEST_F(MalformedInput, OverlappingTensors) {
  weights(safetensors(R"({"a.weight": {"dtype": "F32", "shape": [32], "data_offsets": [0, 128]},
                         "b.weight": {"dtype": "F32", "shape": [16], "data_offsets": [64, 128]}})", kNormData));
  expect_failure(kInvalid, {"overlap", "a.weight", "b.weight"});
}

TEST_F(MalformedInput, MetadataValueNotString) {
  weights(safetensors(R"({"__metadata__": {"format": 3},)" + kNorm + "}", kNormData));
  expect_failure(kInvalid, {"__metadata__", "format"});
}

TEST_F(MalformedInput, MissingConfig) {
  fs::remove(dir() + "/config.json");
  weights(safetensors("{" + kNorm + "}", kNormData));
  expect_failure(kInvalid, {"missing config.json"});
}

TEST_F(MalformedInput, ConfigNotJson) {
  write_file(dir() + "/config.json", "{\"model_type\": \"qwen3\",,}");
  weights(safetensors("{" + kNorm + "}", kNormData));
  expect_failure(kInvalid, {"config.json", "not valid JSON"});
}

TEST_F(MalformedInput, ConfigMissingRequiredKey) {
  auto cfg = nlohmann::json::parse(kConfig);
  cfg.erase("hidden_size");
  write_file(dir() + "/config.json", cfg.dump());
  weights(safetensors("{" + kNorm + "}", kNormData));
  expect_failure(kInvalid, {"config.json", "hidden_size"});
}

TEST_F(MalformedInput, ConfigWrongType) {
  auto cfg = nlohmann::json::parse(kConfig);
  cfg["num_attention_heads"] = "two";
  write_file(dir() + "/config.json", cfg.dump());
  weights(safetensors("{" + kNorm + "}", kNormData));
  expect_failure(kInvalid, {"config.json", "num_attention_heads", "integer"});
}

// Found by the config.json fuzzer (fuzz/regressions/model_config): JSON allows 1e999, a double does
// not; it was an uncaught nlohmann exception (exit 1, "internal error") in every JSON reader.
TEST_F(MalformedInput, NumberBeyondADouble) {
  std::string cfg = kConfig;
  cfg.replace(cfg.find("\"hidden_size\": 32"), 18, "\"hidden_size\": 1e999");
  write_file(dir() + "/config.json", cfg);
  weights(safetensors("{" + kNorm + "}", kNormData));
  expect_failure(kInvalid, {"config.json", "number overflow"});
}

// Found by the plan fuzzer (fuzz/regressions/plan_file): a field of the wrong type where the reader
// asked json::value() for a string.
TEST_F(MalformedInput, PlanFieldOfTheWrongType) {
  weights(safetensors("{" + kNorm + "}", kNormData));
  write_file(tmp_ / "plan.json", R"({"format": 2000000011267068134065})");
  expect_failure(kInvalid, {"plan.json", "'format' must be"}, "--plan " + shell_quote(tmp_ / "plan.json"));
}

TEST_F(MalformedInput, IndexNamesMissingShard) {
  weights(safetensors("{" + kNorm + "}", kNormData), "model-00001-of-00002.safetensors");
  write_file(dir() + "/model.safetensors.index.json",
             R"({"weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors",
                                 "lm_head.weight": "model-00002-of-00002.safetensors"}})");
  expect_failure(kInvalid, {"model-00002-of-00002.safetensors", "does not exist"});
}

TEST_F(MalformedInput, IndexPutsTensorInWrongShard) {
  weights(safetensors("{" + kNorm + "}", kNormData));
  write_file(dir() + "/model.safetensors.index.json",
             R"({"weight_map": {"model.norm.weight": "model.safetensors", "lm_head.weight": "model.safetensors"}})");
  expect_failure(kInvalid, {"lm_head.weight", "does not contain"});
}

TEST_F(MalformedInput, IndexNotJson) {
  weights(safetensors("{" + kNorm + "}", kNormData));
  write_file(dir() + "/model.safetensors.index.json", "{weight_map: }");
  expect_failure(kInvalid, {"model.safetensors.index.json", "not valid JSON"});
}

TEST_F(MalformedInput, NoWeightFiles) {
  expect_failure(kInvalid, {"no *.safetensors"});
}

TEST_F(MalformedInput, SameTensorInTwoShards) {
  weights(safetensors("{" + kNorm + "}", kNormData), "model-00001-of-00002.safetensors");
  weights(safetensors("{" + kNorm + "}", kNormData), "model-00002-of-00002.safetensors");
  expect_failure(kInvalid, {"model.norm.weight", "in both"});
}

TEST_F(MalformedInput, NonFiniteWeightNamed) {
  std::string data(32 * 32 * 4, '\0');
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(&data[(3 * 32 + 5) * 4], &nan, 4);
  weights(safetensors(R"({"model.layers.0.mlp.up_proj.weight": {"dtype": "F32", "shape": [32, 32], "data_offsets": [0, 4096]}})", data));
  expect_failure(kInvalid, {"model.layers.0.mlp.up_proj.weight", "row 3, column 5", "nan"}, "--group-size 32");
}

TEST_F(MalformedInput, MissingExpertNamed) {
  write_file(dir() + "/config.json", moe_config(2));
  weights(safetensors(R"({"model.layers.0.mlp.experts.0.up_proj.weight": {"dtype": "F32", "shape": [32, 32], "data_offsets": [0, 4096]}})",
                      std::string(4096, '\0')));
  expect_failure(kInvalid, {"model.layers.0.mlp.switch_mlp.up_proj", "expert 1 is missing"});
}

TEST_F(MalformedInput, OffsetsThatOverflowInt64) {
  weights(safetensors(R"({"model.norm.weight": {"dtype": "F32", "shape": [32],
                         "data_offsets": [9223372036854775807, 9223372036854775935]}})", kNormData));
  expect_failure(kInvalid, {"model.norm.weight", "9223372036854775807", "past the end"});
}

TEST_F(MalformedInput, DuplicateTensorNames) {
  weights(safetensors("{" + kNorm + ", " + kNorm + "}", kNormData));
  expect_failure(kInvalid, {"model.safetensors", "'model.norm.weight' is named twice"});
}

TEST_F(MalformedInput, ZeroDimension) {
  weights(safetensors(R"({"model.layers.0.mlp.up_proj.weight": {"dtype": "F32", "shape": [64, 0], "data_offsets": [0, 0]}})", ""));
  expect_failure(kInvalid, {"model.layers.0.mlp.up_proj.weight", "zero dimension", "[64, 0]"});
}

TEST_F(MalformedInput, DtypeOfAnotherFormat) {
  weights(safetensors(R"({"model.norm.weight": {"dtype": "F8_E4M3", "shape": [32], "data_offsets": [0, 32]}})",
                      std::string(32, '\0')));
  expect_failure(kUnsupported, {"model.norm.weight", "F8_E4M3"});
}

TEST_F(MalformedInput, NoExperts) {
  write_file(dir() + "/config.json", moe_config(0));
  weights(safetensors("{" + kNorm + "}", kNormData));
  expect_failure(kInvalid, {"config.json", "'num_experts' must be positive, got 0"});
}

// Text inputs: a tokenizer, a chat template and a query suite, each through the command that reads it.
TEST(MalformedText, TokenizerMergeNamingAnUnknownToken) {
  TempDir tmp;
  auto tok = nlohmann::json::parse(slurp(data_path("tool-calling/tokenizer.json")));
  auto& merges = tok["model"]["merges"];
  merges.insert(merges.begin(), merges[0].is_array() ? nlohmann::json::array({"zzq", "qqz"}) : nlohmann::json("zzq qqz"));
  write_file(tmp / "tokenizer.json", tok.dump());
  const auto r = run_quantlab("tokenize " + shell_quote(tmp.path()) + " --text hello");
  EXPECT_EQ(r.exit_code, kInvalid) << r.err;
  EXPECT_NE(r.err.find("tokenizer.json: model.merges: merge 0"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("\"zzq\""), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST(MalformedText, TemplateThatRecursesWithoutEnd) {
  TempDir tmp;
  fs::copy_file(data_path("tool-calling/tokenizer.json"), tmp / "tokenizer.json");
  auto cfg = nlohmann::json::parse(slurp(data_path("tool-calling/tokenizer_config.json")));
  cfg["chat_template"] = "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}";
  write_file(tmp / "tokenizer_config.json", cfg.dump());
  write_file(tmp / "m.json", R"([{"role": "user", "content": "hi"}])");
  const auto r = run_quantlab("chat-template " + shell_quote(tmp.path()) + " --messages " + shell_quote(tmp / "m.json"));
  EXPECT_EQ(r.exit_code, kInvalid) << r.err;
  EXPECT_NE(r.err.find("tokenizer_config.json (chat_template):1:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nest deeper than"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST(MalformedText, SuiteLineThatIsNotUtf8) {
  TempDir tmp;
  write_file(tmp / "bad.jsonl", "{\"id\": \"a\", \"messages\": [{\"role\": \"user\", \"content\": \"caf\xe9\"}], "
                                "\"expect\": {\"tool\": false}}\n");
  const auto r = run_quantlab("calibrate " + shell_quote(data_path("tool-calling/dense-fused-strong-f16")) + " --suite " +
                              shell_quote(tmp / "bad.jsonl") + " --out " + shell_quote(tmp / "s.safetensors"));
  EXPECT_EQ(r.exit_code, kInvalid) << r.err;
  EXPECT_NE(r.err.find("bad.jsonl:1:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("UTF-8"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "s.safetensors"));
}

TEST_F(MalformedInput, BitsOutOfRange) {
  weights(safetensors("{" + kNorm + "}", kNormData));
  expect_failure(kUsage, {"--bits"}, "--bits 9");
}

TEST_F(MalformedInput, GroupSizeNotSupported) {
  weights(safetensors("{" + kNorm + "}", kNormData));
  expect_failure(kUsage, {"--group-size"}, "--group-size 48");
}

TEST_F(MalformedInput, UnknownOption) {
  weights(safetensors("{" + kNorm + "}", kNormData));
  expect_failure(kUsage, {"--frobnicate"}, "--frobnicate");
}

TEST(CliContract, ExistingOutputRefusedWithoutOverwrite) {
  TempDir tmp;
  fs::create_directories(tmp / "out");
  write_file(tmp / "out/keep.txt", "precious");
  const auto r = run_quantlab("quantize " + shell_quote(data_path("reference-models/qwen3-tiny")) + " " +
                              shell_quote(tmp / "out") + " --quiet");
  EXPECT_EQ(r.exit_code, kUsage) << r.err;
  EXPECT_NE(r.err.find("--overwrite"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(tmp / "out/keep.txt"), "precious");
}

TEST(CliContract, OverwriteReplacesOutput) {
  TempDir tmp;
  fs::create_directories(tmp / "out");
  write_file(tmp / "out/stale.safetensors", "old");
  const auto r = run_quantlab("quantize " + shell_quote(data_path("reference-models/qwen3-tiny")) + " " +
                              shell_quote(tmp / "out") + " --quiet --overwrite --bits 6");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "out/stale.safetensors"));
  EXPECT_TRUE(fs::exists(tmp / "out/model.safetensors"));
}

TEST(CliContract, EverySubcommandHasHelp) {
  for (const char* cmd : {"quantize", "dequantize", "inspect", "machine", "fuse", "tokenize", "chat-template", "generate",
                          "logits", "synth", "plan", "bench", "retention", "sweep"}) {
    const auto r = run_quantlab(std::string(cmd) + " --help");
    EXPECT_EQ(r.exit_code, 0) << cmd;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << cmd << ": " << r.out;
  }
}

TEST(CliContract, NoSubcommandIsUsageError) {
  const auto r = run_quantlab("");
  EXPECT_EQ(r.exit_code, kUsage);
}

}  // namespace
}  // namespace quantlab::testing
