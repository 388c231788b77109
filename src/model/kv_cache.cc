#include "model/kv_cache.h"

#include <algorithm>

#include "core/error.h"

namespace quantlab::model {

KvCache::KvCache(size_t layers, size_t kv_dim, size_t max_positions, size_t grow_step)
    : kv_dim_(kv_dim), max_positions_(max_positions), grow_step_(std::max<size_t>(grow_step, 1)),
      keys_(layers), values_(layers) {}

void KvCache::reserve(size_t n) {
  if (n <= capacity_) return;
  if (n > max_positions_)
    fail(ErrorKind::kUsage, "the sequence needs {} positions, more than the context limit of {}", n,
         max_positions_);
  const size_t target = std::min(max_positions_, (n + grow_step_ - 1) / grow_step_ * grow_step_);
  for (auto& k : keys_) k.resize(target * kv_dim_);
  for (auto& v : values_) v.resize(target * kv_dim_);
  capacity_ = target;
}

void KvCache::set_size(size_t n) {
  QL_CHECK(n <= capacity_, "kv cache size {} exceeds capacity {}", n, capacity_);
  size_ = n;
}

size_t KvCache::bytes() const { return 2 * keys_.size() * capacity_ * kv_dim_ * sizeof(float); }

}  // namespace quantlab::model
