// Helpers for the model layer's tests only (included by *_test.cc): reference tensors, scratch
// directories and copies of fixture models with tensors or config keys changed.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "test_support.h"

namespace quantlab::model::testing {

namespace fs = std::filesystem;
using quantlab::testing::data_path;
using quantlab::testing::TempDir;

template <typename T>
std::vector<T> read_tensor(const io::SafetensorsFile& f, const std::string& name) {
  const auto& info = f.at(name);
  const auto bytes = f.bytes(info);
  std::vector<T> v(bytes.size() / sizeof(T));
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

// max |a - b| over all elements; infinity when sizes differ.
inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

inline float max_abs(const std::vector<float>& a) {
  float m = 0;
  for (float v : a) m = std::max(m, std::fabs(v));
  return m;
}

// A copy of a model directory with edits: tensors dropped or replaced, config.json keys changed.
struct ModelEdit {
  std::vector<std::string> drop;
  // name -> (dtype, shape, bytes); adds or replaces.
  std::map<std::string, std::tuple<DType, std::vector<int64_t>, std::vector<uint8_t>>> put;
  std::function<void(nlohmann::ordered_json&)> config;
};

inline void write_edited_model(const std::string& src, const std::string& dst, const ModelEdit& edit) {
  fs::create_directories(dst);
  auto config = nlohmann::ordered_json::parse(read_text_file(src + "/config.json"));
  if (edit.config) edit.config(config);
  std::ofstream(dst + "/config.json") << config.dump(2);
  const auto weights = io::ModelWeights::open(src);
  std::vector<io::TensorSpec> specs;
  std::map<std::string, std::span<const uint8_t>> data;
  for (const auto& name : weights.names()) {
    if (std::count(edit.drop.begin(), edit.drop.end(), name) || edit.put.count(name)) continue;
    const auto& e = weights.at(name);
    specs.push_back({name, e.info->dtype, e.info->shape});
    data[name] = weights.bytes(e);
  }
  for (const auto& [name, t] : edit.put) {
    specs.push_back({name, std::get<0>(t), std::get<1>(t)});
    data[name] = std::get<2>(t);
  }
  io::SafetensorsWriter writer(dst, specs, io::kDefaultMaxShardBytes);
  for (const auto& [name, bytes] : data) writer.write(name, bytes);
  writer.finish(0);
}

}  // namespace quantlab::model::testing
