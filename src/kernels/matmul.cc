// Y = X W^T for a batch of n activation rows (the prefill path). Compiled once per Highway target.
//
// Work is split into tiles of weight rows. A worker decodes its tile to f32 once (affine codes in decode
// order, see affine_unpack-inl.h, with the activations permuted to match; f16/bf16 widened), then runs
// the panel micro-kernel (panel_kernel-inl.h: a few weight rows broadcast against the activations,
// stored transposed in panels of up to kPanelVecs vectors of tokens) over all n rows, so each decoded
// weight is reused n times from cache. Every output element is one FMA chain over K in order, whatever
// the tiling, the K chunking and the thread count.
#include "kernels/highway_config.h"  // must precede the hwy includes

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <utility>
#include <vector>

#include "hwy/aligned_allocator.h"
#include "hwy/highway.h"
#include "kernels/affine_unpack-inl.h"
#include "kernels/convert-inl.h"
#include "kernels/compute_paths.h"
#include "kernels/int8_affine.h"
#include "kernels/kernels.h"
#include "kernels/matrix_checks.h"
#include "kernels/panel_kernel-inl.h"

#ifndef QUANTLAB_KERNELS_MATMUL_WORKSPACE_COUNTER_
#define QUANTLAB_KERNELS_MATMUL_WORKSPACE_COUNTER_
namespace quantlab::kernels::detail {
std::atomic<size_t>& matmul_workspace_bytes_counter();  // one for every target's buffers
}  // namespace quantlab::kernels::detail
#endif

HWY_BEFORE_NAMESPACE();
namespace quantlab::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

// Activations as the micro-kernel reads them: the n tokens' vectors (N tokens each, zero past n) split
// evenly into panels of at most kPanelVecs vectors (65 tokens with 16 lanes: 3 + 2 vectors, not 4 + 1,
// since a one-vector panel needs a broadcast load per FMA). Panel b is K steps (in decode order for
// affine weights) of its vectors side by side, stored densely after the panels before it.
struct Activations {
  float* data = nullptr;  // in the calling thread's arena; written by the job that owns it
  size_t n = 0, K = 0, vectors = 0, panels = 0;

  void Plan(size_t tokens, size_t k) {
    const size_t N = hn::Lanes(DF());
    n = tokens;
    K = k;
    vectors = (n + N - 1) / N;
    panels = (vectors + kPanelVecs - 1) / kPanelVecs;
  }
  size_t FirstVector(size_t b) const { return b * (vectors / panels) + std::min(b, vectors % panels); }
  size_t Vectors(size_t b) const { return vectors / panels + (b < vectors % panels ? 1 : 0); }
  size_t Floats() const { return K * vectors * hn::Lanes(DF()); }
  float* Panel(size_t b) const { return data + K * FirstVector(b) * hn::Lanes(DF()); }
};

// The weight rows [first, first + count) of one tile as f32 rows of K floats.
struct Tile {
  const float* data = nullptr;
  size_t stride = 0;
};

template <int kBits>
void DecodeAffineRow(const AffineUnpacker<kBits>& unpacker, const AffineLayout& L, const uint8_t* row,
                     const float* scales, const float* biases, float* out) {
  constexpr size_t kC = AffineUnpacker<kBits>::kCodesPerLane;
  const DF df;
  const hn::RebindToSigned<DF> di;
  for (size_t v = 0; v < L.vectors_per_row; ++v) {
    const auto lanes = unpacker.Load(row, v);
    const auto scale = LaneGroupValues(df, L, scales, v);
    const auto bias = LaneGroupValues(df, L, biases, v);
    float* dst = out + v * L.codes_per_vector;
    Unroll<0, kC>([&](auto k) {
      constexpr size_t K = decltype(k)::value;
      const auto q = hn::ConvertTo(df, hn::BitCast(di, AffineUnpacker<kBits>::template Code<K>(lanes)));
      hn::StoreU(hn::MulAdd(q, scale, bias), df, dst + K * L.lanes);
    });
  }
}

inline size_t RoundUp(size_t n, size_t multiple) { return (n + multiple - 1) / multiple * multiple; }

// A thread's scratch of floats, aligned for whole-vector loads (std::vector's 16-byte alignment would
// split every 64-byte load of the micro-kernel across two cache lines), kept for the thread's life and
// counted in matmul_workspace_bytes().
class AlignedScratch {
 public:
  AlignedScratch() = default;
  AlignedScratch(const AlignedScratch&) = delete;
  AlignedScratch& operator=(const AlignedScratch&) = delete;
  ~AlignedScratch() { detail::matmul_workspace_bytes_counter().fetch_sub(capacity_ * sizeof(float)); }

  float* get(size_t n) {
    if (n > capacity_) {
      data_ = hwy::AllocateAligned<float>(n);
      detail::matmul_workspace_bytes_counter().fetch_add((n - capacity_) * sizeof(float));
      capacity_ = n;
    }
    return data_.get();
  }

 private:
  hwy::AlignedFreeUniquePtr<float[]> data_;
  size_t capacity_ = 0;
};

// Bytes of decoded weights per tile: half the L2 cache, so that the tile stays there while the
// activations stream past (256 KiB where the OS does not say). Tiling never changes a result.
inline size_t TileBytes() {
  static const size_t bytes = [] {
    long l2 = 0;
#ifdef _SC_LEVEL2_CACHE_SIZE
    l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    return l2 > 0 ? static_cast<size_t>(l2) / 2 : size_t{256} << 10;
  }();
  return bytes;
}

// Rows per tile: TileBytes() of f32 rows, a multiple of kPanelRows, at most 64. With a 1 MiB L2, K = 2048
// and 3072 (o and down projections) get 60 and 36 rows instead of 30 and 18 at a fixed 256 KiB: each
// activation panel loaded from L3 then feeds more weight rows.
inline size_t TileRows(size_t K) {
  constexpr size_t kMost = 64 / kPanelRows * kPanelRows;
  return std::clamp<size_t>(TileBytes() / sizeof(float) / K / kPanelRows * kPanelRows, kPanelRows, kMost);
}

// Floats of K per pass: a panel chunk of kPanelVecs vectors (up to 256 KiB with AVX-512) stays in L2
// beside the tile, and the kPanelRows weight rows' chunks (24 KiB) in L1.
constexpr size_t kChunkK = 1024;

// out[t * out_stride + r0 + r] for the block's valid rows r and the panel's tokens t < tokens (the
// accumulators hold tokens side by side). The panel's results are gathered in L1 first: stores straight
// into Y would each touch another cache line, one Y row apart (with 3072 rows, 12 KiB: the same L1 set
// for every token), which took as long as the FMAs.
template <size_t V>
void TransposeBlock(const float* acc, size_t rows, size_t tokens, size_t r0, size_t out_stride, float* out) {
  const size_t N = hn::Lanes(DF());
  for (size_t r = 0; r < rows; ++r) {
    for (size_t v = 0; v < V; ++v) {
      const float* lanes = acc + (r * kPanelVecs + v) * N;
      for (size_t l = 0; l < N && v * N + l < tokens; ++l) out[(v * N + l) * out_stride + r0 + r] = lanes[l];
    }
  }
}

// One panel of `tokens` tokens (at most V * N) against the tile's rows [0, rows), into out [tokens, rows];
// K is walked in chunks of kChunkK with each weight block's accumulators parked in `parked` between
// chunks.
template <size_t V>
void MultiplyPanel(const float* panel, size_t panel_stride, size_t tokens, const Tile& tile, size_t rows,
                   size_t K, float* parked, float* out) {
  const size_t per_block = kPanelRows * kPanelVecs * hn::Lanes(DF());
  for (size_t k0 = 0; k0 < K; k0 += kChunkK) {
    const size_t k1 = std::min(K, k0 + kChunkK);
    for (size_t r = 0; r < rows; r += kPanelRows) {
      const WeightRows ws = MakeWeightRows(tile.data, tile.stride, r, rows);
      float* acc = parked + r / kPanelRows * per_block;
      PanelKernel<V>(ws, panel, panel_stride, k0, k1, k0 == 0, acc);
      if (k1 == K) TransposeBlock<V>(acc, ws.count, tokens, r, rows, out);
    }
  }
}

// Multiplies every panel of X's n tokens by the tile's rows [0, rows), writing Y[t, first_row + r].
void MultiplyTile(const Activations& X, const Tile& tile, size_t rows, size_t first_row, size_t y_stride,
                  float* y) {
  const size_t N = hn::Lanes(DF()), per_panel = kPanelVecs * N;
  thread_local AlignedScratch parked_storage, out_storage;
  float* parked = parked_storage.get(RoundUp(rows, kPanelRows) * per_panel);
  float* out = out_storage.get(per_panel * rows);
  for (size_t b = 0; b < X.panels; ++b) {
    const size_t first = X.FirstVector(b) * N, vectors = X.Vectors(b);
    const size_t tokens = std::min(vectors * N, X.n - first);
    const auto run = [&](auto v) {
      MultiplyPanel<decltype(v)::value>(X.Panel(b), vectors * N, tokens, tile, rows, X.K, parked, out);
    };
    if (vectors == 1) run(std::integral_constant<size_t, 1>());
    else if (vectors == 2) run(std::integral_constant<size_t, std::min<size_t>(2, kPanelVecs)>());
    else if (vectors == 3) run(std::integral_constant<size_t, std::min<size_t>(3, kPanelVecs)>());
    else run(std::integral_constant<size_t, kPanelVecs>());
    for (size_t i = 0; i < tokens; ++i) std::copy_n(out + i * rows, rows, y + (first + i) * y_stride + first_row);
  }
}

// One product of a batch, ready to run: its activations in the micro-kernel's layout (shared with
// an earlier job of the batch that reads the same rows the same way), its tiling, and the function
// that decodes one tile of its weight rows and multiplies it.
struct PreparedMatmul {
  const MatmulJob* job = nullptr;
  Activations X;
  size_t twin = 0;  // the first job of the batch whose activations these are (itself if none before)
  AffineLayout L;  // affine only
  size_t K = 0, tile_rows = 0, tiles = 0;
  void (*tile)(const PreparedMatmul&, size_t first, size_t rows, float* buffer) = nullptr;
};

template <int kBits>
void AffineTile(const PreparedMatmul& p, size_t first, size_t rows, float* buffer) {
  static const AffineUnpacker<kBits> unpacker;  // shuffle tables depend only on the target
  const MatrixView& w = p.job->w;
  AffineRowBuffers& buffers = ThreadRowBuffers();
  buffers.Prepare(p.L);
  for (size_t r0 = 0; r0 < rows; r0 += AffineRowBuffers::kRowBlock) {
    const size_t count = std::min(AffineRowBuffers::kRowBlock, rows - r0);
    buffers.LoadBlock(w, p.L, first + r0, count);
    for (size_t i = 0; i < count; ++i) {
      DecodeAffineRow(unpacker, p.L, buffers.Row(w, p.L, first + r0 + i), buffers.scales(p.L, i),
                      buffers.biases(p.L, i), buffer + (r0 + i) * p.K);
    }
  }
  MultiplyTile(p.X, Tile{buffer, p.K}, rows, first, w.rows, p.job->y);
}

// f32/f16/bf16 weights, widened (or copied: f32 tensors in a file are not 64-byte aligned) into the
// aligned tile buffer.
template <typename T>
void FloatTile(const PreparedMatmul& p, size_t first, size_t rows, float* buffer) {
  const MatrixView& w = p.job->w;
  const T* data = static_cast<const T*>(w.data);
  for (size_t r = 0; r < rows; ++r) {
    float* dst = buffer + r * p.K;
    ConvertTyped(data + (first + r) * w.cols, w.cols, dst);
    std::fill(dst + w.cols, dst + p.K, 0.0f);
  }
  MultiplyTile(p.X, Tile{buffer, p.K}, rows, first, w.rows, p.job->y);
}

using TileFn = void (*)(const PreparedMatmul&, size_t, size_t, float*);

TileFn TileFunction(const MatrixView& w) {
  switch (w.type) {
    case WeightType::kF32: return FloatTile<float>;
    case WeightType::kF16: return FloatTile<hwy::float16_t>;
    case WeightType::kBF16: return FloatTile<hwy::bfloat16_t>;
    case WeightType::kAffine: break;
  }
  switch (w.bits) {
    case 2: return AffineTile<2>;
    case 3: return AffineTile<3>;
    case 4: return AffineTile<4>;
    case 5: return AffineTile<5>;
    case 6: return AffineTile<6>;
    case 7: return AffineTile<7>;
    default: return AffineTile<8>;
  }
}

// Jobs whose activations are laid out identically: the same rows, and for affine weights the same
// decode order (bits, group size and width).
bool SameActivations(const MatmulJob& a, const MatmulJob& b) {
  const bool affine = a.w.type == WeightType::kAffine;
  if (a.x != b.x || a.n != b.n || a.w.cols != b.w.cols || affine != (b.w.type == WeightType::kAffine)) return false;
  return !affine || (a.w.bits == b.w.bits && a.w.group_size == b.w.group_size);
}

// The calling thread's storage for a batch's activation panels, kept between calls: allocating them
// afresh (up to n x K floats per distinct input) cost page faults and zeroing, ~9 % of a MoE prefill.
float* PanelArena(size_t floats) {
  thread_local AlignedScratch arena;
  return arena.get(floats);
}

// Tiling and activation layout of every job; returns the (job, panel) pairs whose panels still need to
// be written.
std::vector<std::pair<size_t, size_t>> PrepareMatmuls(const MatmulJob* jobs, size_t count,
                                                      std::vector<PreparedMatmul>& prepared) {
  const size_t N = hn::Lanes(DF());
  std::vector<std::pair<size_t, size_t>> panels_to_write;
  std::vector<size_t> offsets(count, 0);
  size_t total = 0;
  for (size_t j = 0; j < count; ++j) {
    const MatmulJob& job = jobs[j];
    PreparedMatmul& p = prepared[j];
    p.job = &job;
    p.tile = TileFunction(job.w);
    const bool affine = job.w.type == WeightType::kAffine;
    if (affine) p.L = MakeAffineLayout(job.w);
    p.K = affine ? p.L.padded_cols : RoundUp(job.w.cols, N);
    p.tile_rows = TileRows(p.K);
    p.tiles = (job.w.rows + p.tile_rows - 1) / p.tile_rows;
    p.X.Plan(job.n, p.K);
    const size_t twin = static_cast<size_t>(
        std::find_if(jobs, jobs + j, [&](const MatmulJob& o) { return SameActivations(o, job); }) - jobs);
    p.twin = twin;
    if (twin < j) continue;
    offsets[j] = total;
    total += p.X.Floats();
    for (size_t b = 0; b < p.X.panels; ++b) panels_to_write.emplace_back(j, b);
  }
  float* arena = PanelArena(total);
  for (size_t j = 0; j < count; ++j) prepared[j].X.data = arena + offsets[prepared[j].twin];
  return panels_to_write;
}

// Panel b of job j's activations: its token rows in decode order (affine) or zero-padded to K, then
// transposed so that each k holds the panel's tokens side by side (zero past n). The rows are staged one
// vector apart beyond K (a stride of K floats would put all of them in one L1 set for K = 1024) and
// transposed in blocks of 16 k, whose panel lines stay in L1.
void WriteActivationPanel(const PreparedMatmul& p, size_t b) {
  constexpr size_t kBlockK = 16;
  const MatmulJob& job = *p.job;
  const size_t N = hn::Lanes(DF()), width = p.X.Vectors(b) * N, first = p.X.FirstVector(b) * N;
  const size_t tokens = std::min(width, job.n - first), stride = p.K + N;
  thread_local AlignedScratch rows_storage;
  float* rows = rows_storage.get(tokens * stride);
  for (size_t t = 0; t < tokens; ++t) {
    const float* src = job.x + (first + t) * job.w.cols;
    float* dst = rows + t * stride;
    if (job.w.type == WeightType::kAffine) {
      PermuteActivations(p.L, src, job.w.cols, dst);
    } else {
      std::copy(src, src + job.w.cols, dst);
      std::fill(dst + job.w.cols, dst + p.K, 0.0f);
    }
  }
  float* panel = p.X.Panel(b);
  for (size_t k0 = 0; k0 < p.K; k0 += kBlockK) {
    const size_t k1 = std::min(p.K, k0 + kBlockK);
    for (size_t t = 0; t < tokens; ++t) {
      for (size_t k = k0; k < k1; ++k) panel[k * width + t] = rows[t * stride + k];
    }
    for (size_t k = k0; k < k1; ++k) std::fill(panel + k * width + tokens, panel + (k + 1) * width, 0.0f);
  }
}

// All jobs' tiles form one index space, handed out one tile at a time (a tile is 10-100 us of FMAs):
// two parallel sections per batch whatever its size (activations, then tiles), so a MoE layer's
// experts cost two sections, not three per expert. Each output depends only on its own row and tile.
void MatmulBatchImpl(const MatmulJob* jobs, size_t count, ThreadPool& pool) {
  std::vector<PreparedMatmul> prepared(count);
  const std::vector<std::pair<size_t, size_t>> panels = PrepareMatmuls(jobs, count, prepared);
  // Writing the panels is O(n * cols) of scalar work: split it too, or one core idles meanwhile. One
  // panel per task: two threads writing one panel would share its cache lines.
  pool.parallel_for(panels.size(), 1, [&](size_t begin, size_t end, size_t) {
    for (size_t i = begin; i < end; ++i) WriteActivationPanel(prepared[panels[i].first], panels[i].second);
  });
  std::vector<size_t> starts(count + 1, 0);
  size_t buffer_floats = 0;
  for (size_t j = 0; j < count; ++j) {
    starts[j + 1] = starts[j] + prepared[j].tiles;
    buffer_floats = std::max(buffer_floats, prepared[j].tile_rows * prepared[j].K);
  }
  pool.parallel_for(starts[count], 1, [&](size_t begin, size_t end, size_t) {
    thread_local AlignedScratch tile_buffer;
    float* buffer = tile_buffer.get(buffer_floats);
    for (size_t t = begin; t < end; ++t) {
      const size_t j = static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), t) - starts.begin()) - 1;
      const PreparedMatmul& p = prepared[j];
      const size_t first = (t - starts[j]) * p.tile_rows;
      p.tile(p, first, std::min(p.tile_rows, p.job->w.rows - first), buffer);
    }
  }, starts[count]);
}

// Jobs of at most this many tokens run as one matvec per token. A panel of few tokens wastes most of
// its lanes (2 tokens of 16: ~2 operations per weight for 2 products), while the matvec kernel
// decodes each weight in ~3 operations per vector of weights and token; reading the weights once per
// token is cheap, as the later tokens find them in cache. The crossover is near 3/4 of the lane count:
// 12 with AVX-512, 6 with AVX2, at least 2 (measured: a 32-token MoE prefill, whose experts see ~2
// tokens each, went from 345 to 499 tokens/s, a 512-token one from 751 to 799, with no change for
// dense models).
size_t MatvecMaxTokensImpl() { return std::max<size_t>(2, hn::Lanes(DF()) * 3 / 4); }

}  // namespace quantlab::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace quantlab::kernels {

HWY_EXPORT(MatmulBatchImpl);
HWY_EXPORT(MatvecMaxTokensImpl);

std::atomic<size_t>& detail::matmul_workspace_bytes_counter() {
  static std::atomic<size_t> bytes{0};
  return bytes;
}

size_t matmul_workspace_bytes() { return detail::matmul_workspace_bytes_counter().load(); }

void matmul_batch(const MatmulJob* jobs, size_t count, ThreadPool& pool) {
  const size_t matvec_max_tokens = HWY_DYNAMIC_DISPATCH(MatvecMaxTokensImpl)();
  std::vector<MatvecJob> single;  // one matvec per token of the jobs with few tokens
  std::vector<MatmulJob> work;
  // Int8 jobs of many tokens run the VNNI kernel, or else the exact tiles on int8-rounded activations;
  // bf16 jobs run the exact tiles on bf16-rounded activations (no bf16 prefill kernel, docs/compute-paths.md).
  std::vector<MatmulJob> int8_work;
  const bool vnni = int8::vnni_available();
  for (size_t j = 0; j < count; ++j) {
    const MatmulJob& job = jobs[j];
    check_matrix_view(job.w, "matmul");
    if (job.n == 0 || job.w.rows == 0) continue;
    if (job.w.cols == 0) {
      std::fill(job.y, job.y + job.n * job.w.rows, 0.0f);
      continue;
    }
    if (job.n <= matvec_max_tokens) {
      for (size_t i = 0; i < job.n; ++i) single.push_back({job.w, job.x + i * job.w.cols, job.y + i * job.w.rows});
      continue;
    }
    (vnni && uses_rounded_path(job.w) && job.w.compute == Compute::kInt8 ? int8_work : work).push_back(job);
  }
  std::vector<std::vector<float>> rounded;
  lower_to_exact(work.data(), work.size(), rounded, [](const MatmulJob&) { return false; });
  if (!single.empty()) matvec_batch(single.data(), single.size(), pool);
  if (!work.empty()) HWY_DYNAMIC_DISPATCH(MatmulBatchImpl)(work.data(), work.size(), pool);
  if (!int8_work.empty()) int8::matmul_vnni_batch(int8_work.data(), int8_work.size(), pool);
}

void matmul(const MatrixView& w, const float* x, size_t n, float* y, ThreadPool& pool) {
  const MatmulJob job{w, x, n, y};
  matmul_batch(&job, 1, pool);
}

}  // namespace quantlab::kernels
#endif  // HWY_ONCE
