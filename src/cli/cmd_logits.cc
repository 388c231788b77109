// quantlab logits MODEL --ids 1,2,3 --out FILE.safetensors
// Writes the float32 logits of every position as tensor `logits` [n, vocab] (plus the `input_ids`
// that produced them), for comparison with a reference implementation. The file appears only when
// complete (io::write_safetensors_file stages it beside the destination and renames it into place).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <span>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/token_ids.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "io/safetensors_writer.h"
#include "model/model.h"
#include "model/session.h"

namespace quantlab::cli {

namespace fs = std::filesystem;

namespace {

struct LogitsArgs {
  std::string model, ids, out;
  size_t threads = 0;
  kernels::Compute compute = kernels::Compute::kExact;
  bool overwrite = false;
};

template <typename T>
std::span<const uint8_t> as_bytes_of(const std::vector<T>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(T)};
}

void write_logits(const std::string& out, const std::vector<int32_t>& ids, const std::vector<float>& logits,
                  size_t vocab) {
  const int64_t n = static_cast<int64_t>(ids.size());
  io::write_safetensors_file(out,
                             {{{"logits", DType::kF32, {n, static_cast<int64_t>(vocab)}}, as_bytes_of(logits)},
                              {{"input_ids", DType::kI32, {n}}, as_bytes_of(ids)}},
                             {{"format", "pt"}});
}

void run_logits(const LogitsArgs& a) {
  const std::vector<int32_t> ids = parse_token_ids(a.ids);
  if (fs::exists(a.out) && !a.overwrite)
    fail(ErrorKind::kUsage, "{} exists; pass --overwrite to replace it", a.out);
  const model::Model model = model::Model::load(a.model, a.compute);
  ThreadPool pool(a.threads);
  model::Session session(model, pool);
  const std::vector<float> logits = session.forward(ids, /*all_logits=*/true);
  write_logits(a.out, ids, logits, model.dims().vocab);
  fmt::print("wrote logits [{}, {}] of {} to {}\n", ids.size(), model.dims().vocab, a.model, a.out);
}

}  // namespace

void register_logits(CLI::App& app) {
  auto a = std::make_shared<LogitsArgs>();
  auto* cmd = app.add_subcommand("logits", "Write the float32 logits of every position of a token sequence");
  cmd->add_option("model", a->model, "Model directory (float or MLX-quantized)")->required();
  cmd->add_option("--ids", a->ids, "Token ids, comma-separated (e.g. 1,2,3)")->required();
  cmd->add_option("--out", a->out, "Output .safetensors file (tensor 'logits' [n, vocab])")->required();
  add_threads_option(cmd, &a->threads);
  add_compute_option(cmd, &a->compute);
  cmd->add_flag("--overwrite", a->overwrite, "Replace --out if it exists");
  cmd->callback([a] { run_logits(*a); });
}

}  // namespace quantlab::cli
