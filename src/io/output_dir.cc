#include "io/output_dir.h"

#include <fstream>

#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "core/error.h"

namespace quantlab::io {

namespace fs = std::filesystem;

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
  fs::remove_all(temp_path_, ec);
  fs::create_directory(temp_path_, ec);
  if (ec) fail(ErrorKind::kIo, "{}: cannot create directory: {}", temp_path_, ec.message());
}

AtomicOutputDir::~AtomicOutputDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(temp_path_, ec);
  }
}

std::string AtomicOutputDir::file(const std::string& name) const {
  return (fs::path(temp_path_) / name).string();
}

void AtomicOutputDir::commit() {
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
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    if (!out.flush()) fail(ErrorKind::kIo, "{}: cannot write", tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail(ErrorKind::kIo, "{}: cannot rename into place: {}", path, ec.message());
}

}  // namespace quantlab::io
