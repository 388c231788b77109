// Benchmark probes (see probes.h), compiled once per Highway target.
#include "kernels/highway_config.h"  // must precede the hwy includes

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/probes.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include "hwy/highway.h"
#include "kernels/probes.h"

HWY_BEFORE_NAMESPACE();
namespace quantlab::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

float StreamSumImpl(const float* data, size_t n) {
  const DF df;
  const size_t N = hn::Lanes(df);
  auto s0 = hn::Zero(df), s1 = hn::Zero(df), s2 = hn::Zero(df), s3 = hn::Zero(df);
  size_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    s0 = hn::Add(s0, hn::LoadU(df, data + i));
    s1 = hn::Add(s1, hn::LoadU(df, data + i + N));
    s2 = hn::Add(s2, hn::LoadU(df, data + i + 2 * N));
    s3 = hn::Add(s3, hn::LoadU(df, data + i + 3 * N));
  }
  float sum = hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
  for (; i < n; ++i) sum += data[i];
  return sum;
}

// Ten chains hide the FMA latency (4-5 cycles) behind two FMA pipes on current x86 and Arm cores.
float FmaProbeImpl(size_t iterations, float seed) {
  const DF df;
  const auto m = hn::Set(df, 0.999999f);
  const auto a = hn::Set(df, 1e-7f);
  auto c0 = hn::Set(df, seed), c1 = hn::Add(c0, a), c2 = hn::Add(c1, a), c3 = hn::Add(c2, a);
  auto c4 = hn::Add(c3, a), c5 = hn::Add(c4, a), c6 = hn::Add(c5, a), c7 = hn::Add(c6, a);
  auto c8 = hn::Add(c7, a), c9 = hn::Add(c8, a);
  for (size_t i = 0; i < iterations; ++i) {
    c0 = hn::MulAdd(c0, m, a);
    c1 = hn::MulAdd(c1, m, a);
    c2 = hn::MulAdd(c2, m, a);
    c3 = hn::MulAdd(c3, m, a);
    c4 = hn::MulAdd(c4, m, a);
    c5 = hn::MulAdd(c5, m, a);
    c6 = hn::MulAdd(c6, m, a);
    c7 = hn::MulAdd(c7, m, a);
    c8 = hn::MulAdd(c8, m, a);
    c9 = hn::MulAdd(c9, m, a);
  }
  const auto sum = hn::Add(hn::Add(hn::Add(c0, c1), hn::Add(c2, c3)),
                           hn::Add(hn::Add(hn::Add(c4, c5), hn::Add(c6, c7)), hn::Add(c8, c9)));
  return hn::GetLane(hn::SumOfLanes(df, sum));
}

double FmaProbeFlopsImpl(size_t iterations) {
  return static_cast<double>(iterations) * 10.0 * 2.0 * static_cast<double>(hn::Lanes(DF()));
}

}  // namespace quantlab::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace quantlab::kernels {

HWY_EXPORT(StreamSumImpl);
HWY_EXPORT(FmaProbeImpl);
HWY_EXPORT(FmaProbeFlopsImpl);

float stream_sum(const float* data, size_t n) { return HWY_DYNAMIC_DISPATCH(StreamSumImpl)(data, n); }
float fma_probe(size_t iterations, float seed) { return HWY_DYNAMIC_DISPATCH(FmaProbeImpl)(iterations, seed); }
double fma_probe_flops(size_t iterations) { return HWY_DYNAMIC_DISPATCH(FmaProbeFlopsImpl)(iterations); }

}  // namespace quantlab::kernels
#endif  // HWY_ONCE
