#include "io/output_dir.h"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "core/error.h"
#include "core/input_guard.h"
#include "core/interrupt.h"

namespace quantlab::io {

namespace fs = std::filesystem;

namespace {

// The PID in a temporary name "<prefix><pid>" or "<prefix><pid>.old"; 0 when the name is not one.
pid_t temporary_owner(const std::string& name, const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0) return 0;
  std::string_view rest = std::string_view(name).substr(prefix.size());
  if (rest.ends_with(".old")) rest.remove_suffix(4);
  pid_t pid = 0;
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), pid);
  return ec == std::errc() && end == rest.data() + rest.size() && pid > 0 ? pid : 0;
}

bool process_is_gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

}  // namespace

void remove_stale_temporaries(const std::string& final_path) {
  const fs::path target(final_path);
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string prefix = "." + target.filename().string() + ".tmp-";
  std::error_code ec;
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const pid_t owner = temporary_owner(name, prefix);
    if (owner == 0 || owner == ::getpid() || !process_is_gone(owner)) continue;  // a live run's, or not ours
    std::error_code rm;
    fs::remove_all(it->path(), rm);
    if (!rm)
      fmt::print(stderr, "quantlab: notice: removed {}, left by an interrupted run (process {} is gone)\n",
                 it->path().string(), owner);
  }
}

AtomicOutputDir::AtomicOutputDir(std::string final_path, bool overwrite)
    : final_path_(std::move(final_path)), overwrite_(overwrite) {
  while (final_path_.size() > 1 && final_path_.back() == '/') final_path_.pop_back();
  if (fs::exists(final_path_) && !overwrite_)
    fail(ErrorKind::kUsage, "{}: output already exists (pass --overwrite to replace it)", final_path_);
  const fs::path target(final_path_);
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) fail(ErrorKind::kIo, "{}: cannot create directory: {}", parent.string(), ec.message());
  // Same parent directory, so the final rename is atomic and never crosses a filesystem.
  temp_path_ = (parent / ("." + target.filename().string() + ".tmp-" + std::to_string(::getpid())))
                   .string();
  remove_stale_temporaries(final_path_);
  register_temporary(temp_path_);
  fs::remove_all(temp_path_, ec);
  fs::create_directory(temp_path_, ec);
  if (ec) fail(ErrorKind::kIo, "{}: cannot create directory: {}", temp_path_, ec.message());
}

AtomicOutputDir::~AtomicOutputDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(temp_path_, ec);
  }
  unregister_temporary(temp_path_);
}

std::string AtomicOutputDir::file(const std::string& name) const {
  return (fs::path(temp_path_) / name).string();
}

void AtomicOutputDir::commit() {
  stop_point("commit");  // the kill tests' hook (core/interrupt.h)
  verify_inputs_unchanged();  // an output built from an input that changed meanwhile is not committed
  std::error_code ec;
  std::string old_path;
  if (fs::exists(final_path_)) {
    QL_CHECK(overwrite_);
    old_path = temp_path_ + ".old";
    fs::rename(final_path_, old_path, ec);
    if (ec) fail(ErrorKind::kIo, "{}: cannot move the old output aside: {}", final_path_, ec.message());
  }
  fs::rename(temp_path_, final_path_, ec);
  if (ec) fail(ErrorKind::kIo, "{}: cannot move the output into place: {}", final_path_, ec.message());
  committed_ = true;
  if (!old_path.empty()) fs::remove_all(old_path, ec);
}

void check_output_not_input(const std::string& input, const std::string& output) {
  std::error_code ec;
  const fs::path in = fs::weakly_canonical(input, ec);
  const fs::path out = fs::weakly_canonical(output, ec);
  const auto rel = out.lexically_relative(in);
  if (out == in || (!rel.empty() && *rel.begin() != ".."))
    fail(ErrorKind::kUsage, "{}: the output must not be the input directory or inside it ({})", output,
         input);
}

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  const TemporaryPath removed_if_interrupted(tmp);
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    if (!out.flush()) fail(ErrorKind::kIo, "{}: cannot write", tmp);
  }
  verify_inputs_unchanged();
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail(ErrorKind::kIo, "{}: cannot rename into place: {}", path, ec.message());
}

}  // namespace quantlab::io
