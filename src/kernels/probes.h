// Machine probes for benchmarks: a streaming read and an FMA-throughput loop, written with the same
// Highway targets as the kernels so that roofline ratios compare like with like.
#pragma once

#include <cstddef>

namespace quantlab::kernels {

// Sum of n floats read sequentially (memory-bandwidth probe; the result defeats dead-code removal).
float stream_sum(const float* data, size_t n);

// Runs `iterations` rounds of 10 independent vector FMA chains; returns a value derived from them.
// Floating-point operations performed: fma_probe_flops(iterations).
float fma_probe(size_t iterations, float seed);
double fma_probe_flops(size_t iterations);

}  // namespace quantlab::kernels
