#include "io/safetensors.h"

#include <atomic>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include "core/error.h"

namespace quantlab::io {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Larger headers are refused before parsing (safetensors' own limit is 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::vector<int64_t> parse_shape(const json& j, const std::string& path, const std::string& name) {
  if (!j.is_array()) fail_input("{}: tensor '{}': shape is not a list", path, name);
  std::vector<int64_t> shape;
  for (const auto& d : j) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0)
      fail_input("{}: tensor '{}': shape {} has a dimension that is not a non-negative integer", path,
                 name, j.dump());
    shape.push_back(d.get<int64_t>());
  }
  return shape;
}

// Element count, or nullopt on overflow.
std::optional<uint64_t> checked_numel(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d)) return {};
    n *= static_cast<uint64_t>(d);
  }
  return n;
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorInfo::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {
std::atomic<uint64_t> g_config_reads{0}, g_header_reads{0};
}  // namespace

ReadCounters read_counters() { return {g_config_reads.load(), g_header_reads.load()}; }
void count_config_read() { g_config_reads.fetch_add(1); }

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  g_header_reads.fetch_add(1);
  parse_header();
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) fail(ErrorKind::kIo, "{}: cannot open: {}", path, std::strerror(errno));
}

SafetensorsFile::~SafetensorsFile() {
  if (fd_ >= 0) ::close(fd_);
}

void SafetensorsFile::read(const TensorInfo& t, uint64_t offset, uint64_t n, void* dst) const {
  QL_CHECK(offset + n <= t.nbytes, "read of {} bytes at {} past tensor '{}'", n, offset, t.name);
  auto* out = static_cast<uint8_t*>(dst);
  uint64_t pos = t.offset + offset;
  while (n > 0) {
    const ssize_t r = ::pread(fd_, out, n, static_cast<off_t>(pos));
    if (r < 0 && errno == EINTR) continue;
    // The header placed every tensor inside the file when it was opened: an end of file here means the
    // file shrank since (core/input_guard.h).
    if (r == 0)
      fail(ErrorKind::kIo, "{}: truncated while being read (tensor '{}' ends at byte {}; {} bytes when opened)",
           path(), t.name, t.offset + t.nbytes, file_size());
    if (r < 0) fail(ErrorKind::kIo, "{}: reading tensor '{}' failed: {}", path(), t.name, std::strerror(errno));
    out += r;
    pos += static_cast<uint64_t>(r);
    n -= static_cast<uint64_t>(r);
  }
}

uint8_t* DirectBuffer::reserve(size_t bytes) {
  if (bytes > capacity_) {
    const size_t size = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* p = std::aligned_alloc(kAlignment, size);
    if (p == nullptr) throw std::bad_alloc();
    data_.reset(static_cast<uint8_t*>(p));
    capacity_ = size;
  }
  return data_.get();
}

int SafetensorsFile::direct_fd() const {
  std::call_once(direct_once_, [&] { direct_fd_ = ::open(path().c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT); });
  return direct_fd_;
}

const uint8_t* SafetensorsFile::read_uncached(const TensorInfo& t, uint64_t offset, uint64_t n,
                                              DirectBuffer& buffer) const {
  QL_CHECK(offset + n <= t.nbytes, "read of {} bytes at {} past tensor '{}'", n, offset, t.name);
  constexpr uint64_t kAlign = DirectBuffer::kAlignment;
  const uint64_t pos = t.offset + offset;
  const uint64_t begin = pos / kAlign * kAlign, end = (pos + n + kAlign - 1) / kAlign * kAlign;
  uint8_t* data = buffer.reserve(end - begin);
  const int fd = direct_fd();
  uint64_t done = 0;
  while (fd >= 0 && begin + done < pos + n) {
    const ssize_t r = ::pread(fd, data + done, end - begin - done, static_cast<off_t>(begin + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EINVAL && done == 0) break;  // O_DIRECT refused at read time: use the cache
    if (r == 0)
      fail(ErrorKind::kIo, "{}: truncated while being read (tensor '{}' ends at byte {}; {} bytes when opened)",
           path(), t.name, t.offset + t.nbytes, file_size());
    if (r < 0) fail(ErrorKind::kIo, "{}: reading tensor '{}' failed: {}", path(), t.name, std::strerror(errno));
    done += static_cast<uint64_t>(r);
  }
  if (begin + done >= pos + n && fd >= 0) return data + (pos - begin);
  read(t, offset, n, data);
  return data;
}

void SafetensorsFile::parse_header() {
  const std::string& path = file_.path();
  if (file_.size() < 8)
    fail_input("{}: not a safetensors file: {} bytes, shorter than the 8-byte header length", path,
               file_.size());
  const uint64_t header_len = read_u64_le(file_.data());
  if (header_len > kMaxHeaderBytes)
    fail_input("{}: header length {} exceeds the {} byte limit (corrupt or not safetensors)", path,
               header_len, kMaxHeaderBytes);
  if (header_len > file_.size() - 8)
    fail_input("{}: header length {} runs past the end of the {}-byte file (truncated?)", path,
               header_len, file_.size());
  const char* text = reinterpret_cast<const char*>(file_.data() + 8);
  json header;
  // JSON parsers keep one of two equal keys silently; a header naming a tensor twice is corrupt (which
  // bytes would be the tensor?), so the top-level keys are checked as they are read.
  std::set<std::string> names;
  std::string duplicate;
  const json::parser_callback_t check_names = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && !names.insert(parsed.get<std::string>()).second &&
        duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  try {
    header = json::parse(text, text + header_len, check_names);
  } catch (const json::exception& e) {  // bad syntax, and numbers beyond a double (406)
    fail_input("{}: header is not valid JSON: {}", path, e.what());
  }
  if (!duplicate.empty()) fail_input("{}: tensor '{}' is named twice in the header", path, duplicate);
  if (!header.is_object()) fail_input("{}: header is not a JSON object", path);

  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = file_.size() - data_start;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      if (!it->is_object()) fail_input("{}: __metadata__ is not an object", path);
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          fail_input("{}: __metadata__ value for '{}' is not a string", path, m.key());
        metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const json& t = *it;
    if (!t.is_object() || !t.contains("dtype") || !t.contains("shape") || !t.contains("data_offsets"))
      fail_input("{}: tensor '{}': entry needs dtype, shape and data_offsets", path, name);
    if (!t["dtype"].is_string()) fail_input("{}: tensor '{}': dtype is not a string", path, name);
    const std::string dtype_str = t["dtype"].get<std::string>();
    const auto dtype = parse_dtype(dtype_str);
    if (!dtype)
      fail(ErrorKind::kUnsupported,
           "{}: tensor '{}': dtype {} is not supported (F32, F16, BF16, U32, I32, I64, U8)", path,
           name, dtype_str);
    TensorInfo info;
    info.name = name;
    info.dtype = *dtype;
    info.shape = parse_shape(t["shape"], path, name);
    const json& off = t["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      fail_input("{}: tensor '{}': data_offsets must be two non-negative integers", path, name);
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end) fail_input("{}: tensor '{}': data_offsets [{}, {}] are reversed", path, name, begin, end);
    if (end > data_size)
      fail_input("{}: tensor '{}': bytes [{}, {}) run past the end of the data ({} bytes; truncated file?)",
                 path, name, begin, end, data_size);
    const auto numel = checked_numel(info.shape);
    const uint64_t elem = dtype_size(info.dtype);
    if (!numel || *numel > std::numeric_limits<uint64_t>::max() / elem || *numel * elem != end - begin)
      fail_input("{}: tensor '{}': shape {} of {} needs {} bytes but data_offsets span {}", path, name,
                 info.shape_string(), dtype_str,
                 numel && *numel <= std::numeric_limits<uint64_t>::max() / elem
                     ? std::to_string(*numel * elem) : std::string("too many"),
                 end - begin);
    info.offset = data_start + begin;
    info.nbytes = end - begin;
    tensors_.push_back(std::move(info));
  }
  std::sort(tensors_.begin(), tensors_.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.offset < b.offset; });
  for (size_t i = 0; i < tensors_.size(); ++i) {
    if (i > 0 && tensors_[i].nbytes > 0 && tensors_[i - 1].offset + tensors_[i - 1].nbytes > tensors_[i].offset)
      fail_input("{}: tensors '{}' and '{}' overlap in the file", path, tensors_[i - 1].name,
                 tensors_[i].name);
    index_[tensors_[i].name] = i;
  }
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& SafetensorsFile::at(std::string_view name) const {
  const TensorInfo* t = find(name);
  if (!t) fail_input("{}: no tensor named '{}'", path(), name);
  return *t;
}

std::span<const uint8_t> SafetensorsFile::bytes(const TensorInfo& t) const {
  return {file_.data() + t.offset, t.nbytes};
}

ModelWeights ModelWeights::open_file(const std::string& path) {
  ModelWeights w;
  w.dir_ = fs::path(path).parent_path().string();
  w.add_file(std::make_unique<SafetensorsFile>(path));
  return w;
}

void ModelWeights::add_file(std::unique_ptr<SafetensorsFile> file) {
  for (const TensorInfo& t : file->tensors()) {
    auto [it, inserted] = entries_.emplace(t.name, Entry{file.get(), &t});
    if (!inserted)
      fail_input("tensor '{}' is in both {} and {}", t.name, it->second.file->path(), file->path());
  }
  files_.push_back(std::move(file));
}

ModelWeights ModelWeights::open(const std::string& dir) {
  if (!fs::is_directory(dir)) fail(ErrorKind::kIo, "{}: not a directory", dir);
  ModelWeights w;
  w.dir_ = dir;
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index_path)) {
    json index;
    try {
      index = json::parse(read_text_file(index_path.string()));
    } catch (const json::exception& e) {  // bad syntax, and numbers beyond a double (406)
      fail_input("{}: not valid JSON: {}", index_path.string(), e.what());
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      fail_input("{}: missing the weight_map object", index_path.string());
    std::map<std::string, std::vector<std::string>> by_file;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      if (!it->is_string()) fail_input("{}: weight_map['{}'] is not a file name", index_path.string(), it.key());
      by_file[it->get<std::string>()].push_back(it.key());
    }
    for (const auto& [file, names] : by_file) {
      const fs::path p = fs::path(dir) / file;
      if (file.find('/') != std::string::npos || !fs::exists(p))
        fail_input("{}: weight_map names file '{}' (for tensor '{}'), which does not exist",
                   index_path.string(), file, names.front());
      auto st = std::make_unique<SafetensorsFile>(p.string());
      for (const auto& n : names)
        if (!st->find(n))
          fail_input("{}: weight_map puts tensor '{}' in {}, which does not contain it",
                     index_path.string(), n, file);
      w.add_file(std::move(st));
    }
    return w;
  }
  std::vector<fs::path> model_files, any_files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || e.path().extension() != ".safetensors") continue;
    any_files.push_back(e.path());
    if (name.rfind("model", 0) == 0) model_files.push_back(e.path());
  }
  auto& chosen = model_files.empty() ? any_files : model_files;
  if (chosen.empty()) fail_input("{}: no *.safetensors weight files found", dir);
  std::sort(chosen.begin(), chosen.end());
  for (const auto& p : chosen) w.add_file(std::make_unique<SafetensorsFile>(p.string()));
  return w;
}

const ModelWeights::Entry* ModelWeights::find(std::string_view name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

const ModelWeights::Entry& ModelWeights::at(std::string_view name) const {
  const Entry* e = find(name);
  if (!e) fail_input("{}: the weights have no tensor named '{}'", dir_, name);
  return *e;
}

std::vector<std::string> ModelWeights::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [name, e] : entries_) out.push_back(name);
  return out;
}

uint64_t ModelWeights::disk_bytes() const {
  uint64_t total = 0;
  for (const auto& f : files_) total += f->file_size();
  return total;
}

}  // namespace quantlab::io
