// Keys and values of every layer for the positions seen so far, in f32. Keys are stored after the
// q/k norm and RoPE (model-spec.md §2.2 step 6). Layout per layer: [capacity, kv_heads * head_dim],
// row t holding position t, so one kv head's rows are head_dim floats, kv_dim floats apart.
#pragma once

#include <cstddef>
#include <vector>

namespace quantlab::model {

class KvCache {
 public:
  // `max_positions` bounds the cache; memory grows on demand in steps of `grow_step` positions.
  KvCache(size_t layers, size_t kv_dim, size_t max_positions, size_t grow_step = 256);

  size_t size() const { return size_; }
  size_t max_positions() const { return max_positions_; }
  size_t kv_dim() const { return kv_dim_; }
  // Makes room for positions [0, n); throws Error(kUsage) past max_positions.
  void reserve(size_t n);
  // Marks positions [0, n) as filled (n <= reserved capacity).
  void set_size(size_t n);
  void clear() { size_ = 0; }

  float* keys(size_t layer) { return keys_[layer].data(); }
  float* values(size_t layer) { return values_[layer].data(); }
  const float* keys(size_t layer) const { return keys_[layer].data(); }
  const float* values(size_t layer) const { return values_[layer].data(); }

  // Bytes allocated for keys and values.
  size_t bytes() const;

 private:
  size_t kv_dim_;
  size_t max_positions_;
  size_t grow_step_;
  size_t capacity_ = 0;
  size_t size_ = 0;
  std::vector<std::vector<float>> keys_, values_;
};

}  // namespace quantlab::model
