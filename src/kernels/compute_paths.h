// What the rounded-activation compute paths (Compute::kInt8, Compute::kBf16; docs/compute-paths.md)
// share: which jobs take a path, which of a batch's jobs share one rounding of their input, and the
// lowering of a path to the exact kernels on its rounded activations where its own kernel does not run
// (the same numbers up to f32 summation order, at the exact path's speed).
#pragma once

#include <cstddef>
#include <vector>

#include "kernels/kernels.h"

namespace quantlab::kernels {

// Whether a view's products take a rounded-activation path: affine weights with a compute other than
// exact (float matrices always compute exactly).
inline bool uses_rounded_path(const MatrixView& w) {
  return w.type == WeightType::kAffine && w.compute != Compute::kExact;
}

// Whether this CPU (and this build) runs the path's own decode kernel: VNNI + VBMI for int8,
// AVX512-BF16 for bf16; always true for exact.
bool native_kernel_available(Compute c);

// x [n, cols] as path c computes with it: int8 quantizes each row per group of group_size and
// dequantizes it; bf16 rounds each value to bfloat16 (nearest even); exact copies it.
std::vector<float> rounded_input(Compute c, const float* x, size_t n, size_t cols, size_t group_size);

inline size_t tokens_of(const MatvecJob&) { return 1; }
inline size_t tokens_of(const MatmulJob& job) { return job.n; }

// The index of the first of `owners` that reads its activations as `job` does (the same x, tokens,
// columns, group size and path), or owners.size(): the jobs of a batch that share one rounding of their
// input (q/k/v, gate/up, the experts of one token).
template <class Job>
size_t shared_input(const std::vector<Job>& owners, const Job& job) {
  size_t i = 0;
  while (i < owners.size() &&
         !(owners[i].x == job.x && tokens_of(owners[i]) == tokens_of(job) && owners[i].w.compute == job.w.compute &&
           owners[i].w.group_size == job.w.group_size && owners[i].w.cols == job.w.cols))
    ++i;
  return i;
}

// Turns the rounded-path jobs among jobs[0, count) for which keep(job) is false into exact jobs on
// their path's rounded activations, rounded once per shared input and kept in `rounded` (which must
// outlive the jobs).
template <class Job, class Keep>
void lower_to_exact(Job* jobs, size_t count, std::vector<std::vector<float>>& rounded, Keep keep) {
  std::vector<Job> owners;  // the first job of each input, as it was before lowering
  const size_t first = rounded.size();
  for (size_t j = 0; j < count; ++j) {
    Job& job = jobs[j];
    if (!uses_rounded_path(job.w) || keep(job)) continue;
    const size_t r = shared_input(owners, job);
    if (r == owners.size()) {
      owners.push_back(job);
      rounded.push_back(
          rounded_input(job.w.compute, job.x, tokens_of(job), job.w.cols, static_cast<size_t>(job.w.group_size)));
    }
    job.x = rounded[first + r].data();
    job.w.compute = Compute::kExact;
  }
}

}  // namespace quantlab::kernels
