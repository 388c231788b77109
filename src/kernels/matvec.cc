// y = W x for every stored weight format (the decode path). Compiled once per Highway target; matvec
// dispatches once, then everything below is direct calls. Rows are split across the pool; each row is
// computed by the same code whatever the chunking, so results do not depend on the thread count.
//
// Affine rows: y[r] = sum_g scale_g * dot(q_g, x_g) + bias_g * sum(x_g). Activations are permuted into
// decode order (affine_unpack-inl.h) once per call, and pre-scaled so that codes can be converted where
// they sit in their lane: one AND, one int->float conversion and one FMA per 16 codes (AVX-512).
#include "kernels/highway_config.h"  // must precede the hwy includes

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matvec.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <algorithm>
#include <cmath>
#include <vector>

#include "hwy/aligned_allocator.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/affine_unpack-inl.h"
#include "kernels/convert-inl.h"
#include "kernels/bf16_affine.h"
#include "kernels/compute_paths.h"
#include "kernels/int8_affine.h"
#include "kernels/kernels.h"
#include "kernels/matrix_checks.h"

HWY_BEFORE_NAMESPACE();
namespace quantlab::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

// Rows per parallel_for chunk: enough work (~64K weights, about a microsecond) to amortise the hand-out.
inline size_t MinRowsPerChunk(size_t cols) { return std::max<size_t>(1, 65536 / std::max<size_t>(cols, 1)); }

// Row-independent inputs of an affine matvec: the activations in decode order, pre-scaled for
// CodeInPlace, and the sum of x over each group (zero-padded to padded_groups), which the bias multiplies.
struct AffineActivations {
  hwy::AlignedFreeUniquePtr<float[]> permuted;
  hwy::AlignedFreeUniquePtr<float[]> group_sums;
};

template <int kBits>
AffineActivations PrepareActivations(const AffineLayout& L, const float* x, size_t cols, size_t group) {
  using Unpacker = AffineUnpacker<kBits>;
  AffineActivations a;
  a.permuted = hwy::AllocateAligned<float>(L.padded_cols);
  int shifts[16];
  for (size_t k = 0; k < Unpacker::kCodesPerLane; ++k) shifts[k] = Unpacker::InPlaceShift(k);
  PermuteActivations(L, x, cols, a.permuted.get(), shifts);
  a.group_sums = hwy::AllocateAligned<float>(L.padded_groups);
  for (size_t g = 0; g < L.padded_groups; ++g) {
    float sum = 0.0f;
    for (size_t c = 0; g < L.groups_per_row && c < group; ++c) sum += x[g * group + c];
    a.group_sums[g] = sum;
  }
  return a;
}

// The scale (or bias) of every lane of vector v: one broadcast when the vector lies in one group.
template <class DF>
HWY_INLINE hn::Vec<DF> VectorGroupValues(DF df, const AffineLayout& L, const float* per_group, size_t v) {
  if (L.vector_in_one_group) return hn::Set(df, per_group[(v * L.codes_per_vector) >> L.group_shift]);
  return LaneGroupValues(df, L, per_group, v);
}

// The bias term sum_g bias_g * sum(x_g), added lane-wise to a row's accumulator. Lanes past the last
// group meet zero group sums.
template <class DF>
HWY_INLINE hn::Vec<DF> AddBiasTerm(DF df, const AffineLayout& L, hn::Vec<DF> acc, const float* biases,
                                   const float* sums) {
  const size_t N = hn::Lanes(df);
  for (size_t g = 0; g < L.groups_per_row; g += N) acc = hn::MulAdd(hn::LoadU(df, biases + g), hn::LoadU(df, sums + g), acc);
  return acc;
}

// Four consecutive outputs at once: y = sum_v scale_v * dot(q_v, x_v) + bias term, per row. Each
// activation vector is loaded once for the four rows (f32 activations cost 8x the bytes of 4-bit
// codes, so one row at a time is bound by loads, not by memory or FMAs), the AND masks stay in
// registers, and the four horizontal sums share one reduction. Every row runs the same operations (two
// FMA chains, even and odd codes, one FMA with the scales per vector, one reduction tree) in every
// block, so a row's result depends on nothing but its own data: not on the chunking, nor on the thread
// count. SVE vectors cannot live in arrays, hence the named variables.
#define QL_ROW_LOAD(r) \
  hwy::Prefetch(rows[r] + ahead + v * vector_bytes); \
  const auto lanes##r = unpacker.Load(rows[r], v); \
  auto even##r = hn::Zero(df), odd##r = hn::Zero(df);
#define QL_ROW_FMA(r)                                                        \
  {                                                                          \
    const auto q = unpacker.template CodeInPlace<K>(df, lanes##r);           \
    if constexpr (K % 2 == 0) even##r = hn::MulAdd(q, xk, even##r);          \
    else odd##r = hn::MulAdd(q, xk, odd##r);                                 \
  }
#define QL_ROW_SCALE(r) \
  acc##r = hn::MulAdd(hn::Add(even##r, odd##r), VectorGroupValues(df, L, scales[r], v), acc##r);
#define QL_FOUR_ROWS(M) M(0) M(1) M(2) M(3)

constexpr size_t kPrefetchBytes = 8192;

// Rows between a block's scale-and-bias prefetch and their use: whole blocks covering twice the codes'
// prefetch distance (the conversion reads a block at once, so it must not catch up with the prefetch).
inline size_t ParamRowsAhead(const AffineLayout& L) {
  constexpr size_t kBlock = AffineRowBuffers::kRowBlock;
  const size_t rows = (2 * kPrefetchBytes + L.row_bytes - 1) / L.row_bytes;
  return std::max<size_t>(2, (rows + kBlock - 1) / kBlock) * kBlock;
}

template <int kBits>
HWY_NOINLINE void AffineRowsDot4(const AffineUnpacker<kBits>& unpacker, const AffineLayout& L,
                                 const uint8_t* const* rows, const AffineActivations& x,
                                 const float* const* scales, const float* const* biases, float* out) {
  constexpr size_t kC = AffineUnpacker<kBits>::kCodesPerLane;
  const DF df;
  const size_t N = hn::Lanes(df);
  auto acc0 = hn::Zero(df), acc1 = hn::Zero(df), acc2 = hn::Zero(df), acc3 = hn::Zero(df);
  // Four interleaved row streams defeat the hardware prefetchers (8-bit decode from DRAM ran at half
  // speed), so each stream prefetches the same bytes of a row about 8 KiB further on (~250 ns of
  // streaming at 30 GB/s, over twice the DRAM latency; measured best of 4/8/16 rows in kernels_bench).
  // Prefetches past the matrix end are harmless hints.
  const size_t ahead = std::max<size_t>(4, (kPrefetchBytes + L.row_bytes - 1) / L.row_bytes) * L.row_bytes;
  const size_t vector_bytes = unpacker.codes_per_vector() * kBits / 8;
  for (size_t v = 0; v < L.vectors_per_row; ++v) {
    const float* xv = x.permuted.get() + v * (N * kC);
    QL_FOUR_ROWS(QL_ROW_LOAD)
    Unroll<0, kC>([&](auto k) {
      constexpr size_t K = decltype(k)::value;
      const auto xk = hn::LoadU(df, xv + K * N);
      QL_FOUR_ROWS(QL_ROW_FMA)
    });
    QL_FOUR_ROWS(QL_ROW_SCALE)
  }
  const float* sums = x.group_sums.get();
  SumOfFour(df, AddBiasTerm(df, L, acc0, biases[0], sums), AddBiasTerm(df, L, acc1, biases[1], sums),
            AddBiasTerm(df, L, acc2, biases[2], sums), AddBiasTerm(df, L, acc3, biases[3], sums), out);
}

#undef QL_FOUR_ROWS
#undef QL_ROW_LOAD
#undef QL_ROW_FMA
#undef QL_ROW_SCALE

constexpr size_t kQuad = 4;

// Rows [first, first + count) of one block loaded into `buffers`, four at a time (first is a multiple
// of four). A partial quad at the end of the matrix repeats its last row and drops those results.
template <int kBits>
HWY_INLINE void AffineBlock(const AffineUnpacker<kBits>& unpacker, const MatrixView& w, const AffineLayout& L,
                            AffineRowBuffers& buffers, const AffineActivations& x, size_t first, size_t count,
                            float* y) {
  for (size_t i = 0; i < count; i += kQuad) {
    const uint8_t* rows[kQuad];
    const float* scales[kQuad];
    const float* biases[kQuad];
    for (size_t j = 0; j < kQuad; ++j) {
      const size_t row = std::min(i + j, count - 1);
      rows[j] = buffers.Row(w, L, first + row);
      scales[j] = buffers.scales(L, row);
      biases[j] = buffers.biases(L, row);
    }
    float out[kQuad];
    AffineRowsDot4(unpacker, L, rows, x, scales, biases, out);
    std::copy_n(out, std::min(kQuad, count - i), y + first + i);
  }
}

// One job of a batch, ready to run: its work is counted in quads of rows (the unit handed out to
// threads), and `run` computes the quads [begin, end) of it.
struct PreparedJob {
  const MatvecJob* job = nullptr;
  size_t quads = 0;
  const AffineLayout* layout = nullptr;     // affine only
  const AffineActivations* x = nullptr;    // affine only
  const int8::Activations* x8 = nullptr;   // affine with Compute::kInt8 only
  const bf16::Activations* xb = nullptr;   // affine with Compute::kBf16 only
  void (*run)(const PreparedJob&, size_t begin, size_t end) = nullptr;
};

template <int kBits>
void RunAffineQuads(const PreparedJob& p, size_t begin, size_t end) {
  static const AffineUnpacker<kBits> unpacker;  // shuffle tables depend only on the target
  const MatrixView& w = p.job->w;
  const AffineLayout& L = *p.layout;
  AffineRowBuffers& buffers = ThreadRowBuffers();
  buffers.Prepare(L);
  const size_t last = std::min(w.rows, end * kQuad);
  constexpr size_t kBlock = AffineRowBuffers::kRowBlock;
  // Scales and biases (a few cache lines per block) are requested ParamRowsAhead rows before their
  // conversion, as the codes are: a burst over the whole chunk up front evicted itself on long chunks,
  // and their misses then stalled the conversion (18 % of single-thread 4-bit decode of the head).
  const size_t ahead = ParamRowsAhead(L);
  AffineRowBuffers::PrefetchParams(w, L, begin * kQuad, std::min(last - begin * kQuad, ahead + kBlock));
  for (size_t first = begin * kQuad; first < last; first += kBlock) {
    const size_t count = std::min(kBlock, last - first);
    if (first + ahead + kBlock < last) AffineRowBuffers::PrefetchParams(w, L, first + ahead + kBlock, kBlock);
    buffers.LoadBlock(w, L, first, count);
    AffineBlock(unpacker, w, L, buffers, *p.x, first, count, p.job->y);
  }
}

template <typename T>
void RunFloatQuads(const PreparedJob& p, size_t begin, size_t end) {
  const MatrixView& w = p.job->w;
  const T* data = static_cast<const T*>(w.data);
  const size_t last = std::min(w.rows, end * kQuad);
  for (size_t r = begin * kQuad; r < last; ++r) p.job->y[r] = DotF32(p.job->x, data + r * w.cols, w.cols);
}

// Int8 jobs run through the VNNI kernel (int8_affine.h), bf16 jobs through the AVX512-BF16 kernel
// (bf16_affine.h); matvec_batch lowers them to exact jobs on rounded activations where those cannot run.
void RunInt8Quads(const PreparedJob& p, size_t begin, size_t end) {
  const size_t first = begin * kQuad, last = std::min(p.job->w.rows, end * kQuad);
  int8::rows_vnni(p.job->w, first, last - first, *p.x8, p.job->y + first);
}

void RunBf16Quads(const PreparedJob& p, size_t begin, size_t end) {
  const size_t first = begin * kQuad, last = std::min(p.job->w.rows, end * kQuad);
  bf16::rows_bf16(p.job->w, first, last - first, *p.xb, p.job->y + first);
}

// The activations of a rounded-path job, prepared by the first job of the batch with the same input
// (compute_paths.h, shared_input); `owners` and `prepared` grow together.
template <class Activations, class Prepare>
const Activations* SharedActivations(std::vector<MatvecJob>& owners, std::vector<Activations>& prepared,
                                     const MatvecJob& job, Prepare prepare) {
  const size_t i = shared_input(owners, job);
  if (i < owners.size()) return &prepared[i];
  prepare(job.x, job.w.cols, static_cast<size_t>(job.w.group_size), prepared.emplace_back());
  owners.push_back(job);
  return &prepared.back();
}

// The per-width pieces of an affine job: its activation preparation and its quad kernel.
struct AffineKernels {
  AffineActivations (*prepare)(const AffineLayout&, const float* x, size_t cols, size_t group);
  void (*run)(const PreparedJob&, size_t begin, size_t end);
};

AffineKernels AffineKernelsFor(int bits) {
  switch (bits) {
    case 2: return {PrepareActivations<2>, RunAffineQuads<2>};
    case 3: return {PrepareActivations<3>, RunAffineQuads<3>};
    case 4: return {PrepareActivations<4>, RunAffineQuads<4>};
    case 5: return {PrepareActivations<5>, RunAffineQuads<5>};
    case 6: return {PrepareActivations<6>, RunAffineQuads<6>};
    case 7: return {PrepareActivations<7>, RunAffineQuads<7>};
    default: return {PrepareActivations<8>, RunAffineQuads<8>};
  }
}

// Layouts and prepared activations of a batch; affine jobs with the same input vector and the same
// bits, group size and width (q/k/v, gate/up, the active experts' gate/up) share one preparation.
struct BatchInputs {
  std::vector<AffineLayout> layouts;
  std::vector<AffineActivations> activations;
  std::vector<size_t> owner;  // per activation: the job index that prepared it
  std::vector<int8::Activations> int8_activations;
  std::vector<MatvecJob> int8_owner;  // per int8 activation: the first job that reads it
  std::vector<bf16::Activations> bf16_activations;
  std::vector<MatvecJob> bf16_owner;  // per bf16 activation: the first job that reads it

  size_t Find(const MatvecJob* jobs, const MatvecJob& job) const {
    for (size_t i = 0; i < owner.size(); ++i) {
      const MatvecJob& o = jobs[owner[i]];
      if (o.x == job.x && o.w.bits == job.w.bits && o.w.group_size == job.w.group_size && o.w.cols == job.w.cols)
        return i;
    }
    return owner.size();
  }
};

std::vector<PreparedJob> PrepareJobs(const MatvecJob* jobs, size_t count, BatchInputs& inputs) {
  inputs.layouts.reserve(count);  // PreparedJob keeps pointers into these vectors
  inputs.activations.reserve(count);
  inputs.int8_activations.reserve(count);
  inputs.bf16_activations.reserve(count);
  std::vector<PreparedJob> prepared(count);
  for (size_t j = 0; j < count; ++j) {
    const MatvecJob& job = jobs[j];
    PreparedJob& p = prepared[j];
    p.job = &job;
    p.quads = (job.w.rows + kQuad - 1) / kQuad;
    switch (job.w.type) {
      case WeightType::kF32: p.run = RunFloatQuads<float>; continue;
      case WeightType::kF16: p.run = RunFloatQuads<hwy::float16_t>; continue;
      case WeightType::kBF16: p.run = RunFloatQuads<hwy::bfloat16_t>; continue;
      case WeightType::kAffine: break;
    }
    if (job.w.compute == Compute::kInt8) {
      p.x8 = SharedActivations(inputs.int8_owner, inputs.int8_activations, job, int8::quantize_activations);
      p.run = RunInt8Quads;
      continue;
    }
    if (job.w.compute == Compute::kBf16) {
      p.xb = SharedActivations(inputs.bf16_owner, inputs.bf16_activations, job, bf16::prepare_activations);
      p.run = RunBf16Quads;
      continue;
    }
    const AffineKernels kernels = AffineKernelsFor(job.w.bits);
    size_t a = inputs.Find(jobs, job);
    if (a == inputs.owner.size()) {
      inputs.layouts.push_back(MakeAffineLayout(job.w));
      inputs.activations.push_back(
          kernels.prepare(inputs.layouts.back(), job.x, job.w.cols, static_cast<size_t>(job.w.group_size)));
      inputs.owner.push_back(j);
    }
    p.layout = &inputs.layouts[a];
    p.x = &inputs.activations[a];
    p.run = kernels.run;
  }
  return prepared;
}

// All jobs' quads form one index space handed out in chunks; a chunk may span jobs. Every quad is
// computed the same way wherever it lands, so results equal those of one matvec per job.
void MatvecBatchImpl(const MatvecJob* jobs, size_t count, ThreadPool& pool) {
  BatchInputs inputs;
  const std::vector<PreparedJob> prepared = PrepareJobs(jobs, count, inputs);
  std::vector<size_t> starts(count + 1, 0);
  size_t widest = 1;
  for (size_t j = 0; j < count; ++j) {
    starts[j + 1] = starts[j] + prepared[j].quads;
    widest = std::max(widest, jobs[j].w.cols);
  }
  const auto run_chunk = [&](size_t begin, size_t end, size_t) {
    size_t j = static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), begin) - starts.begin()) - 1;
    for (; j < count && starts[j] < end; ++j) {
      const size_t lo = std::max(begin, starts[j]) - starts[j], hi = std::min(end, starts[j + 1]) - starts[j];
      if (lo < hi) prepared[j].run(prepared[j], lo, hi);
    }
  };
  // Guided chunks: each chunk's start costs a prefetch ramp from DRAM (the row streams prefetch only
  // ahead of themselves), so a section of a few tens of microseconds wants few chunks, yet a thread left
  // idle at its end costs as much. Long chunks first, ~1 us ones last: 0.6B-shaped decode matvecs went
  // from ~70 % to ~95 % of the bandwidth probe (kernels_bench BM_MatvecLayerStack, 4-bit).
  pool.parallel_for_guided(starts[count], MinRowsPerChunk(widest) / kQuad, run_chunk);
}

}  // namespace quantlab::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace quantlab::kernels {

HWY_EXPORT(MatvecBatchImpl);

namespace {

// Rounded-path jobs whose kernel this CPU lacks become exact jobs on their rounded activations, so a
// path means the same arithmetic on every CPU.
void run_lowered(const MatvecJob* jobs, size_t count, ThreadPool& pool) {
  std::vector<MatvecJob> lowered(jobs, jobs + count);
  std::vector<std::vector<float>> rounded;
  lower_to_exact(lowered.data(), count, rounded,
                 [](const MatvecJob& job) { return native_kernel_available(job.w.compute); });
  HWY_DYNAMIC_DISPATCH(MatvecBatchImpl)(lowered.data(), count, pool);
}

}  // namespace

void matvec_batch(const MatvecJob* jobs, size_t count, ThreadPool& pool) {
  bool lower = false;
  for (size_t j = 0; j < count; ++j) {
    check_matrix_view(jobs[j].w, "matvec");
    lower = lower || (uses_rounded_path(jobs[j].w) && !native_kernel_available(jobs[j].w.compute));
  }
  if (lower) return run_lowered(jobs, count, pool);
  HWY_DYNAMIC_DISPATCH(MatvecBatchImpl)(jobs, count, pool);
}

void matvec(const MatrixView& w, const float* x, float* y, ThreadPool& pool) {
  const MatvecJob job{w, x, y};
  matvec_batch(&job, 1, pool);
}

}  // namespace quantlab::kernels
#endif  // HWY_ONCE
