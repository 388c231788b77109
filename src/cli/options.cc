#include "cli/options.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

#include "core/error.h"
#include "kernels/format.h"

namespace quantlab::cli {

void add_threads_option(CLI::App* cmd, size_t* threads) {
  cmd->add_option("--threads", *threads, "Worker threads (0 = one per hardware thread)")
      ->check(CLI::Range(0, 1024));
}

void add_vocab_prior_option(CLI::App* cmd, double* weight) {
  cmd->add_option("--vocab-prior", *weight,
                  "gptq/delta: weight of the whole vocabulary's embedding rows in layer 0's attention statistics "
                  "beside the calibration's tokens (0: calibration only; docs/rounding.md)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
}

CLI::Validator bit_width_check() { return CLI::IsMember(kernels::supported_bits()); }

CLI::Validator group_size_check() {
  const auto sizes = kernels::supported_group_sizes();
  return CLI::IsMember(std::vector<int>(sizes.begin(), sizes.end()));
}

namespace {

// "a,b,c" -> {"a", "b", "c"} (an empty text is one empty item).
std::vector<std::string> comma_items(const std::string& text) {
  std::vector<std::string> out;
  for (size_t start = 0;;) {
    const size_t comma = text.find(',', start);
    out.push_back(text.substr(start, comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

}  // namespace

CLI::Validator method_list_check() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        for (const std::string& name : comma_items(text))
          if (!quant::find_rounding_method(name)) return "'" + name + "' is not a rounding method (rtn, gptq, delta)";
        return "";
      },
      "METHOD[,METHOD...]");
}

std::vector<quant::RoundingMethod> parse_method_list(const std::string& text) {
  std::vector<quant::RoundingMethod> out;
  for (const std::string& name : comma_items(text)) {
    const quant::RoundingMethod m = quant::parse_rounding_method(name);
    if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  }
  return out;
}

void add_dtype_option(CLI::App* cmd, std::string* dtype, const std::string& what) {
  cmd->add_option("--dtype", *dtype, what)->check(CLI::IsMember({"float16", "bfloat16", "float32"}));
}

std::optional<DType> parse_dtype_flag(const std::string& value) {
  if (value.empty()) return std::nullopt;
  auto t = parse_float_dtype_config_name(value);
  if (!t) fail(ErrorKind::kUsage, "--dtype {}: expected float16, bfloat16 or float32", value);
  return t;
}

void add_compute_option(CLI::App* cmd, kernels::Compute* compute) {
  cmd->add_option_function<std::string>(
         "--compute", [compute](const std::string& name) { *compute = kernels::parse_compute(name); },
         "Arithmetic of quantized matrices: exact (f32 activations, default), int8 (activations rounded "
         "to int8 per group, integer dot products) or bf16 (activations rounded to bfloat16, as MLX "
         "computes a bf16 model; docs/compute-paths.md)")
      ->check(CLI::IsMember({"exact", "int8", "bf16"}));
}

std::map<std::string, kernels::Compute> parse_model_compute(const std::vector<std::string>& specs,
                                                            const std::set<std::string>& names) {
  std::map<std::string, kernels::Compute> computes;
  for (const std::string& spec : specs) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || !names.count(spec.substr(0, eq)))
      fail(ErrorKind::kUsage, "--model-compute {}: expected NAME=exact|int8|bf16 with NAME one of the --model names", spec);
    computes[spec.substr(0, eq)] = kernels::parse_compute(spec.substr(eq + 1));
  }
  return computes;
}

NamedDir parse_named_dir(const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos) return {std::filesystem::path(text).lexically_normal().filename().string(), text};
  if (eq == 0 || eq + 1 == text.size()) fail(ErrorKind::kUsage, "--model '{}': expected NAME=DIR", text);
  return {text.substr(0, eq), text.substr(eq + 1)};
}

uint64_t parse_size(const std::string& text, const std::string& flag) {
  size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(text, &pos);
  } catch (const std::exception&) {
    fail(ErrorKind::kUsage, "{} {}: not a size (e.g. 5GB, 500MiB, 1048576)", flag, text);
  }
  const std::string unit = text.substr(pos);
  double mult = 1;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "KB") mult = 1e3;
  else if (unit == "MB") mult = 1e6;
  else if (unit == "GB") mult = 1e9;
  else if (unit == "KiB") mult = 1024.0;
  else if (unit == "MiB") mult = 1024.0 * 1024;
  else if (unit == "GiB") mult = 1024.0 * 1024 * 1024;
  else fail(ErrorKind::kUsage, "{} {}: unknown unit '{}' (B, KB, MB, GB, KiB, MiB, GiB)", flag, text, unit);
  if (value <= 0) fail(ErrorKind::kUsage, "{} {}: must be positive", flag, text);
  return static_cast<uint64_t>(value * mult);
}

std::string human_bytes(uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1e9) return fmt::format("{:.2f} GB", b / 1e9);
  if (b >= 1e6) return fmt::format("{:.2f} MB", b / 1e6);
  if (b >= 1e3) return fmt::format("{:.1f} KB", b / 1e3);
  return fmt::format("{} B", bytes);
}

std::string utc_now_iso8601() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace quantlab::cli
