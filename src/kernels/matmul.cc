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

#include <algorithm>
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

// Rows per tile: a tile of decoded weights stays around 256 KiB (in L2) and a multiple of kBlock.
inline size_t TileRows(size_t K) { return std::clamp<size_t>(65536 / K / kBlock * kBlock, kBlock, 64); }

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
  thread_local std::vector<float> acc;
  acc.resize((rows + kBlock - 1) / kBlock * per_block);
  for (size_t i = 0; i < n; i += kBlock) {
    const RowBlock xs = MakeBlock(X.data, X.stride, i, n);
    for (size_t k0 = 0; k0 < K; k0 += kChunkK) {
      const size_t k1 = std::min(K, k0 + kChunkK);
      for (size_t r = 0; r < rows; r += kBlock) {
        const RowBlock ws = MakeBlock(tile.data, tile.stride, r, rows);
        MicroKernel4x4Chunk(xs, ws, k0, k1, k0 == 0, k1 == K, acc.data() + r / kBlock * per_block, block);
        if (k1 == K) WriteBlock(block, xs, ws, i, r, first_row, y_stride, y);
      }
    }
  }
}

// Runs fn(first_row, rows, tile_buffer) for each tile of weight rows, in parallel; tile_buffer is the
// worker's scratch of TileRows(K) * K floats.
template <class DecodeFn>
void ForEachTile(size_t total_rows, size_t K, ThreadPool& pool, const DecodeFn& fn) {
  const size_t tile_rows = TileRows(K);
  const size_t tiles = (total_rows + tile_rows - 1) / tile_rows;
  pool.parallel_for(tiles, 1, [&](size_t begin, size_t end, size_t) {
    thread_local std::vector<float> buffer;
    buffer.resize(tile_rows * K);
    for (size_t t = begin; t < end; ++t) {
      const size_t first = t * tile_rows;
      fn(first, std::min(tile_rows, total_rows - first), buffer.data());
    }
  });
}

template <int kBits>
void AffineMatmul(const MatrixView& w, const float* x, size_t n, float* y, ThreadPool& pool) {
  const AffineUnpacker<kBits> unpacker;
  const AffineLayout L = MakeAffineLayout(w);
  const size_t K = L.padded_cols;
  Activations X;
  X.storage = hwy::AllocateAligned<float>(n * K);
  X.data = X.storage.get();
  X.stride = K;
  // Permuting n rows is O(n * cols) of scalar work: split it too, or one core idles meanwhile.
  pool.parallel_for(n, 16, [&](size_t begin, size_t end, size_t) {
    for (size_t i = begin; i < end; ++i) PermuteActivations(L, x + i * w.cols, w.cols, X.storage.get() + i * K);
  });
  ForEachTile(w.rows, K, pool, [&](size_t first, size_t rows, float* buffer) {
    AffineRowBuffers& buffers = ThreadRowBuffers();
    buffers.Prepare(L);
    for (size_t r0 = 0; r0 < rows; r0 += AffineRowBuffers::kRowBlock) {
      const size_t count = std::min(AffineRowBuffers::kRowBlock, rows - r0);
      buffers.LoadBlock(w, L, first + r0, count);
      for (size_t i = 0; i < count; ++i) {
        DecodeAffineRow(unpacker, L, buffers.Row(w, L, first + r0 + i), buffers.scales(L, i),
                        buffers.biases(L, i), buffer + (r0 + i) * K);
      }
    }
    MultiplyTile(X, n, Tile{buffer, K}, rows, K, first, w.rows, y);
  });
}

// f32/f16/bf16 weights. When K is a multiple of the lane count, f32 weights and the activations are
// read in place; otherwise both are copied with zero padding (rare: model widths are multiples of 64).
template <typename T>
void FloatMatmul(const MatrixView& w, const float* x, size_t n, float* y, ThreadPool& pool) {
  const size_t N = hn::Lanes(DF());
  const size_t K = RoundUp(w.cols, N);
  const T* data = static_cast<const T*>(w.data);
  Activations X;
  X.data = x;
  X.stride = w.cols;
  if (K != w.cols) {
    X.storage = hwy::AllocateAligned<float>(n * K);
    std::fill(X.storage.get(), X.storage.get() + n * K, 0.0f);
    for (size_t i = 0; i < n; ++i) std::copy(x + i * w.cols, x + (i + 1) * w.cols, X.storage.get() + i * K);
    X.data = X.storage.get();
    X.stride = K;
  }
  ForEachTile(w.rows, K, pool, [&](size_t first, size_t rows, float* buffer) {
    if constexpr (sizeof(T) == 4) {
      if (K == w.cols) {
        return MultiplyTile(X, n, Tile{reinterpret_cast<const float*>(data) + first * K, K}, rows, K,
                            first, w.rows, y);
      }
    }
    for (size_t r = 0; r < rows; ++r) {
      float* dst = buffer + r * K;
      ConvertTyped(data + (first + r) * w.cols, w.cols, dst);
      std::fill(dst + w.cols, dst + K, 0.0f);
    }
    MultiplyTile(X, n, Tile{buffer, K}, rows, K, first, w.rows, y);
  });
}

void MatmulImpl(const MatrixView& w, const float* x, size_t n, float* y, ThreadPool& pool) {
  switch (w.type) {
    case WeightType::kF32:
      return FloatMatmul<float>(w, x, n, y, pool);
    case WeightType::kF16:
      return FloatMatmul<hwy::float16_t>(w, x, n, y, pool);
    case WeightType::kBF16:
      return FloatMatmul<hwy::bfloat16_t>(w, x, n, y, pool);
    case WeightType::kAffine:
      break;
  }
  switch (w.bits) {
    case 2: return AffineMatmul<2>(w, x, n, y, pool);
    case 3: return AffineMatmul<3>(w, x, n, y, pool);
    case 4: return AffineMatmul<4>(w, x, n, y, pool);
    case 5: return AffineMatmul<5>(w, x, n, y, pool);
    case 6: return AffineMatmul<6>(w, x, n, y, pool);
    case 7: return AffineMatmul<7>(w, x, n, y, pool);
    default: return AffineMatmul<8>(w, x, n, y, pool);
  }
}

}  // namespace quantlab::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace quantlab::kernels {

HWY_EXPORT(MatmulImpl);

void matmul(const MatrixView& w, const float* x, size_t n, float* y, ThreadPool& pool) {
  check_matrix_view(w, "matmul");
  if (n == 0 || w.rows == 0) return;
  if (n == 1) return matvec(w, x, y, pool);  // nothing to reuse a decoded tile for
  if (w.cols == 0) {
    std::fill(y, y + n * w.rows, 0.0f);
    return;
  }
  HWY_DYNAMIC_DISPATCH(MatmulImpl)(w, x, n, y, pool);
}

}  // namespace quantlab::kernels
#endif  // HWY_ONCE
