// Y = X W^T for a batch of n activation rows (the prefill path). Compiled once per Highway target.
//
// Work is split into tiles of weight rows. A worker decodes its tile to f32 once (affine codes in decode
// order, see affine_unpack-inl.h, with the activations permuted to match; f16/bf16 widened), then runs a
// 4x4 register-blocked micro-kernel (4 activation rows x 4 weight rows, 16 vector accumulators) over all
// n rows, so each decoded weight is reused n times from cache. Every output element is one fixed
// sequence of FMAs over K followed by one fixed reduction tree (SumOfFour), whatever the tiling and
// thread count.
#include "kernels/highway_config.h"  // must precede the hwy includes

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/matmul.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "hwy/aligned_allocator.h"
#include "hwy/highway.h"
#include "kernels/affine_unpack-inl.h"
#include "kernels/convert-inl.h"
#include "kernels/kernels.h"
#include "kernels/matrix_checks.h"
#include "kernels/microkernel-inl.h"

HWY_BEFORE_NAMESPACE();
namespace quantlab::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

// Activations as the micro-kernel reads them: rows of K floats (K a multiple of the lane count), in
// decode order for affine weights, zero-padded past cols.
struct Activations {
  const float* data = nullptr;
  size_t stride = 0;
  hwy::AlignedFreeUniquePtr<float[]> storage;
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

// A thread's scratch of floats, aligned for whole-vector loads. std::vector's 16-byte alignment would
// split every 64-byte load of the micro-kernel across two cache lines.
class AlignedScratch {
 public:
  float* get(size_t n) {
    if (n > capacity_) {
      data_ = hwy::AllocateAligned<float>(n);
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

// Rows per tile: TileBytes() of f32 rows, a multiple of kBlock, at most 64. With a 1 MiB L2, K = 2048
// and 3072 (o and down projections) get 64 and 40 rows instead of 32 and 20 at a fixed 256 KiB: each
// activation block loaded from L3 then feeds more weight rows (down: 58 -> 63 % of the FMA peak).
inline size_t TileRows(size_t K) {
  return std::clamp<size_t>(TileBytes() / sizeof(float) / K / kBlock * kBlock, kBlock, 64);
}

// Floats of K per pass: a 4-row block of activations and one of weights (16 KiB each) then stay in L1
// while the weight blocks of the tile stream past; a longer K (2048 and up: the MoE shapes' gate/up and
// every o/down projection) otherwise evicts the activation block on every call.
constexpr size_t kChunkK = 1024;

void WriteBlock(const float* block, const RowBlock& xs, const RowBlock& ws, size_t i, size_t r, size_t first_row,
                size_t y_stride, float* y) {
  for (size_t a = 0; a < xs.count; ++a) {
    for (size_t b = 0; b < ws.count; ++b) y[(i + a) * y_stride + first_row + r + b] = block[a * kBlock + b];
  }
}

// Multiplies every kBlock x kBlock block of X rows [0, n) by the tile's rows [0, rows), writing
// Y[i, first_row + r]. Above kChunkK, K is walked in chunks with the 16 accumulators of each weight block
// parked in `acc` between chunks (identical results, see MicroKernel4x4Chunk).
void MultiplyTile(const Activations& X, size_t n, const Tile& tile, size_t rows, size_t K,
                  size_t first_row, size_t y_stride, float* y) {
  float block[kBlock * kBlock];
  if (K <= kChunkK) {
    for (size_t i = 0; i < n; i += kBlock) {
      const RowBlock xs = MakeBlock(X.data, X.stride, i, n);
      for (size_t r = 0; r < rows; r += kBlock) {
        const RowBlock ws = MakeBlock(tile.data, tile.stride, r, rows);
        MicroKernel4x4(xs, ws, K, block);
        WriteBlock(block, xs, ws, i, r, first_row, y_stride, y);
      }
    }
    return;
  }
  const size_t N = hn::Lanes(DF()), per_block = kBlock * kBlock * N;
  thread_local AlignedScratch parked;
  float* acc = parked.get((rows + kBlock - 1) / kBlock * per_block);
  for (size_t i = 0; i < n; i += kBlock) {
    const RowBlock xs = MakeBlock(X.data, X.stride, i, n);
    for (size_t k0 = 0; k0 < K; k0 += kChunkK) {
      const size_t k1 = std::min(K, k0 + kChunkK);
      for (size_t r = 0; r < rows; r += kBlock) {
        const RowBlock ws = MakeBlock(tile.data, tile.stride, r, rows);
        MicroKernel4x4Chunk(xs, ws, k0, k1, k0 == 0, k1 == K, acc + r / kBlock * per_block, block);
        if (k1 == K) WriteBlock(block, xs, ws, i, r, first_row, y_stride, y);
      }
    }
  }
}

// One product of a batch, ready to run: its activations in the micro-kernel's layout (shared with
// an earlier job of the batch that reads the same rows the same way), its tiling, and the function
// that decodes one tile of its weight rows and multiplies it.
struct PreparedMatmul {
  const MatmulJob* job = nullptr;
  Activations X;
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
  MultiplyTile(p.X, p.job->n, Tile{buffer, p.K}, rows, p.K, first, w.rows, p.job->y);
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
  MultiplyTile(p.X, p.job->n, Tile{buffer, p.K}, rows, p.K, first, w.rows, p.job->y);
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

// Whether rows of `cols` floats from x all start on a vector boundary (else they are copied).
inline bool IsVectorAligned(const float* x, size_t cols) {
  return reinterpret_cast<uintptr_t>(x) % HWY_ALIGNMENT == 0 && cols * sizeof(float) % HWY_ALIGNMENT == 0;
}

// Jobs whose activations are laid out identically: the same rows, and for affine weights the same
// decode order (bits, group size and width).
bool SameActivations(const MatmulJob& a, const MatmulJob& b) {
  const bool affine = a.w.type == WeightType::kAffine;
  if (a.x != b.x || a.n != b.n || a.w.cols != b.w.cols || affine != (b.w.type == WeightType::kAffine)) return false;
  return !affine || (a.w.bits == b.w.bits && a.w.group_size == b.w.group_size);
}

// Tiling and activation storage of every job; returns the (job, row) pairs whose activations still
// need to be written (permuted into decode order, or copied with zero padding).
std::vector<std::pair<size_t, size_t>> PrepareMatmuls(const MatmulJob* jobs, size_t count,
                                                      std::vector<PreparedMatmul>& prepared) {
  const size_t N = hn::Lanes(DF());
  std::vector<std::pair<size_t, size_t>> rows_to_write;
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
    const size_t twin = static_cast<size_t>(
        std::find_if(jobs, jobs + j, [&](const MatmulJob& o) { return SameActivations(o, job); }) - jobs);
    if (twin < j) {
      p.X.data = prepared[twin].X.data;
      p.X.stride = prepared[twin].X.stride;
    } else if (!affine && p.K == job.w.cols && IsVectorAligned(job.x, job.w.cols)) {
      p.X.data = job.x;  // read in place
      p.X.stride = job.w.cols;
    } else {
      p.X.storage = hwy::AllocateAligned<float>(job.n * p.K);
      p.X.data = p.X.storage.get();
      p.X.stride = p.K;
      for (size_t i = 0; i < job.n; ++i) rows_to_write.emplace_back(j, i);
    }
  }
  return rows_to_write;
}

// Row i of job j's activations in the layout its tiles read.
void WriteActivationRow(const PreparedMatmul& p, size_t i) {
  const MatmulJob& job = *p.job;
  float* dst = p.X.storage.get() + i * p.K;
  const float* src = job.x + i * job.w.cols;
  if (job.w.type == WeightType::kAffine) return PermuteActivations(p.L, src, job.w.cols, dst);
  std::copy(src, src + job.w.cols, dst);
  std::fill(dst + job.w.cols, dst + p.K, 0.0f);
}

// All jobs' tiles form one index space, handed out one tile at a time (a tile is 10-100 us of FMAs):
// two parallel sections per batch whatever its size (activations, then tiles), so a MoE layer's
// experts cost two sections, not three per expert. Each output depends only on its own row and tile.
void MatmulBatchImpl(const MatmulJob* jobs, size_t count, ThreadPool& pool) {
  std::vector<PreparedMatmul> prepared(count);
  const std::vector<std::pair<size_t, size_t>> rows = PrepareMatmuls(jobs, count, prepared);
  // Permuting n rows is O(n * cols) of scalar work: split it too, or one core idles meanwhile.
  pool.parallel_for(rows.size(), 16, [&](size_t begin, size_t end, size_t) {
    for (size_t r = begin; r < end; ++r) WriteActivationRow(prepared[rows[r].first], rows[r].second);
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

}  // namespace quantlab::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace quantlab::kernels {

HWY_EXPORT(MatmulBatchImpl);

void matmul_batch(const MatmulJob* jobs, size_t count, ThreadPool& pool) {
  std::vector<MatvecJob> single;  // one activation row reuses no decoded tile: the matvec kernel's
  std::vector<MatmulJob> work;
  for (size_t j = 0; j < count; ++j) {
    const MatmulJob& job = jobs[j];
    check_matrix_view(job.w, "matmul");
    if (job.n == 1) {
      single.push_back({job.w, job.x, job.y});
      continue;
    }
    if (job.n == 0 || job.w.rows == 0) continue;
    if (job.w.cols == 0) {
      std::fill(job.y, job.y + job.n * job.w.rows, 0.0f);
      continue;
    }
    work.push_back(job);
  }
  if (!single.empty()) matvec_batch(single.data(), single.size(), pool);
  if (!work.empty()) HWY_DYNAMIC_DISPATCH(MatmulBatchImpl)(work.data(), work.size(), pool);
}

void matmul(const MatrixView& w, const float* x, size_t n, float* y, ThreadPool& pool) {
  const MatmulJob job{w, x, n, y};
  matmul_batch(&job, 1, pool);
}

}  // namespace quantlab::kernels
#endif  // HWY_ONCE
