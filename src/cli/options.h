// Flag helpers shared by the subcommands, so every command spells --threads, --dtype, --json the same.
#pragma once

#include <CLI/CLI.hpp>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/kernels.h"
#include "quant/rounding_method.h"

namespace quantlab::cli {

// --threads N (0 = all hardware threads).
void add_threads_option(CLI::App* cmd, size_t* threads);
// --vocab-prior W (gptq/delta): the weight of the whole vocabulary's inputs in layer 0's attention
// statistics (quant::RoundingOptions::vocab_prior; docs/rounding.md).
void add_vocab_prior_option(CLI::App* cmd, double* weight);
// Checks of --bits / --group-size values against the weight-format table (kernels/format.h).
CLI::Validator bit_width_check();
CLI::Validator group_size_check();
// rtn, gptq, delta, or a comma-separated list of them (quant/rounding_method.h).
CLI::Validator method_list_check();
// The list's methods in order, each once; Error(kUsage) naming an unknown one.
std::vector<quant::RoundingMethod> parse_method_list(const std::string& text);
// --dtype float16|bfloat16|float32
void add_dtype_option(CLI::App* cmd, std::string* dtype, const std::string& what);
std::optional<DType> parse_dtype_flag(const std::string& value);
// --compute exact|int8|bf16 (docs/compute-paths.md): the arithmetic of the quantized matrices' products.
void add_compute_option(CLI::App* cmd, kernels::Compute* compute);
// The values of --model-compute NAME=exact|int8|bf16 (bench, divergence), by NAME; Error(kUsage) naming the
// value when it is not NAME=PATH or NAME is not one of `names` (the --model names).
std::map<std::string, kernels::Compute> parse_model_compute(const std::vector<std::string>& specs,
                                                            const std::set<std::string>& names);
// A --model value: "NAME=DIR", or a bare DIR named after its last path component.
struct NamedDir {
  std::string name, dir;
};
NamedDir parse_named_dir(const std::string& text);
// Parses "--max-shard-size" values: bytes, or with a suffix KB/MB/GB (10^n) or KiB/MiB/GiB (2^n).
uint64_t parse_size(const std::string& text, const std::string& flag);
std::string human_bytes(uint64_t bytes);
// "2026-11-27T12:00:00Z", for result files.
std::string utc_now_iso8601();

}  // namespace quantlab::cli
