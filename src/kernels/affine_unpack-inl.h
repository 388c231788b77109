// Per-target unpacking of MLX affine codes (docs/mlx-format.md §2: each row is an LSB-first bit stream
// of `bits`-bit codes stored as uint32 words) into vectors, shared by matvec and matmul.
//
// Layout trick: lane i of the v-th vector of a row receives the c = CodesPerLane(bits) consecutive codes
// [v*cpv + i*c, v*cpv + (i+1)*c), cpv = Lanes*c, each starting at bit 0 of the lane. Code k of every lane
// is then one shift and one mask away, and the k-th code vector holds row elements v*cpv + i*c + k.
// That is a fixed permutation of the row ("decode order"); activations are permuted into the same order
// once per call (PermuteActivations), so the inner loops never shuffle floats.
//   2/4/8 bits: a lane is one packed word (c = 16/8/4).
//   3/6 bits:   c = 8/4 codes fill 3 bytes; a 128-bit block gathers its 12 bytes with one byte shuffle
//               (after a word permutation that brings each block its 3 words on wider vectors).
//   5/7 bits:   c = 4 codes fill 20/28 bits that start on a byte or half-byte boundary; as for 3/6 bits
//               plus one per-lane shift (0 or 4) after the byte shuffle.
// Every lane's codes lie in one quantization group because c divides 32 and groups are multiples of 32.
#if defined(QUANTLAB_KERNELS_AFFINE_UNPACK_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QUANTLAB_KERNELS_AFFINE_UNPACK_INL_H_
#undef QUANTLAB_KERNELS_AFFINE_UNPACK_INL_H_
#else
#define QUANTLAB_KERNELS_AFFINE_UNPACK_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "hwy/cache_control.h"
#include "hwy/highway.h"
#include "kernels/convert-inl.h"
#include "kernels/kernels.h"

HWY_BEFORE_NAMESPACE();
namespace quantlab::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr size_t kMaxLanes32 = HWY_MAX_BYTES / 4;

constexpr size_t CodesPerLane(int bits) {
  return bits == 2 ? 16 : (bits == 3 || bits == 4) ? 8 : 4;
}

// Calls f(std::integral_constant<size_t, K>()) for K in [kBegin, kEnd): compile-time unrolling so every
// shift amount is an immediate.
template <size_t kBegin, size_t kEnd, class F>
HWY_INLINE void Unroll(F&& f) {
  if constexpr (kBegin < kEnd) {
    f(std::integral_constant<size_t, kBegin>());
    Unroll<kBegin + 1, kEnd>(f);
  }
}

template <int kBits>
class AffineUnpacker {
 public:
  using DU = hn::ScalableTag<uint32_t>;
  static constexpr size_t kCodesPerLane = CodesPerLane(kBits);

  AffineUnpacker() : lanes_(hn::Lanes(DU())) {
    if constexpr (!kWholeWords && HWY_TARGET != HWY_SCALAR) BuildShuffles();
    for (size_t k = 0; k < kCodesPerLane; ++k) {
      for (size_t i = 0; i < lanes_; ++i) in_place_masks_[k * lanes_ + i] = ((1u << kBits) - 1u) << (k * kBits);
    }
  }

  size_t codes_per_vector() const { return lanes_ * kCodesPerLane; }

  // The lanes of vector v of a row. Reads up to Lanes*4 (SIMD) or 8 (scalar) bytes from the vector's
  // first byte, i.e. possibly past the row end: callers guarantee that much readable memory.
  HWY_INLINE hn::Vec<DU> Load(const uint8_t* row, size_t v) const {
    const DU du;
#if HWY_TARGET == HWY_SCALAR
    const size_t bit = v * kCodesPerLane * kBits;
    uint64_t window;
    std::memcpy(&window, row + bit / 8, sizeof(window));
    return hn::Set(du, static_cast<uint32_t>(window >> (bit % 8)));
#else
    const hn::Repartition<uint8_t, DU> d8;
    const auto raw = hn::LoadU(d8, row + v * (codes_per_vector() * kBits / 8));
    if constexpr (kWholeWords) {
      return hn::BitCast(du, raw);
    } else {
      auto words = hn::BitCast(du, raw);
      if (lanes_ > 4) words = hn::TableLookupLanes(words, hn::SetTableIndices(du, word_index_));
      const auto bytes = hn::TableLookupBytesOr0(hn::BitCast(d8, words), hn::LoadU(d8, byte_index_));
      auto lanes = hn::BitCast(du, bytes);
      // hn::Shr, not operator>>: SVE vectors are sizeless types without operators.
      if constexpr (kBits == 5 || kBits == 7) lanes = hn::Shr(lanes, hn::LoadU(du, bit_shift_));
      return lanes;
    }
#endif
  }

  // log2 of the factor by which CodeInPlace<K> overstates code K: the code is left at bit K*bits of
  // its lane, except the top code of a full 32-bit lane, which is shifted down (masking it in place
  // could set the sign bit of the int32 -> float conversion).
  static constexpr int InPlaceShift(size_t K) {
    return (kWholeWords && K + 1 == kCodesPerLane) ? 0 : static_cast<int>(K) * kBits;
  }

  // Code K of every lane times 2^InPlaceShift(K), as float: one AND (or shift) and one conversion,
  // exact because the value has at most `bits` significant bits. Callers pre-scale the activations
  // by 2^-InPlaceShift(K), which saves the shift that Code<K> needs.
  // The masks are read from a table (a memory operand of the AND) rather than built with Set:
  // with up to 15 distinct masks, compilers otherwise re-materialise some in every iteration.
  template <size_t K, class DF>
  HWY_INLINE hn::Vec<DF> CodeInPlace(DF df, hn::Vec<DU> lanes) const {
    const hn::RebindToSigned<DF> di;
    constexpr int kShift = static_cast<int>(K) * kBits;
    if constexpr (InPlaceShift(K) == 0 && K > 0) {
      return hn::ConvertTo(df, hn::BitCast(di, hn::ShiftRight<kShift>(lanes)));
    } else {
      const auto mask = hn::Load(DU(), in_place_masks_ + K * hn::Lanes(DU()));
      return hn::ConvertTo(df, hn::BitCast(di, hn::And(lanes, mask)));
    }
  }

  // Code K of every lane, as u32.
  template <size_t K>
  static HWY_INLINE hn::Vec<DU> Code(hn::Vec<DU> lanes) {
    constexpr int kShift = static_cast<int>(K) * kBits;
    const auto shifted = hn::ShiftRight<kShift>(lanes);
    if constexpr (kShift + kBits == 32) return shifted;  // nothing above the last code
    return hn::And(shifted, hn::Set(DU(), (1u << kBits) - 1u));
  }

 private:
  static constexpr bool kWholeWords = (32 % kBits == 0);

  // For lane counts that are multiples of 4 (every SIMD target): block j (4 lanes) covers stream
  // bytes [j*B, (j+1)*B), B = 4*c*bits/8 <= 14, which lie within the 4 words starting at word
  // floor(j*B/4); the word table brings those words into the block, the byte table gives each lane the
  // 4 bytes starting at its first code's byte (0x80 = zero for bytes past the block).
  void BuildShuffles() {
    const size_t block_bytes = 4 * kCodesPerLane * kBits / 8;
    for (size_t block = 0; block * 4 < lanes_; ++block) {
      const size_t first_word = block * block_bytes / 4;
      for (size_t t = 0; t < 4; ++t) {
        word_index_[block * 4 + t] = static_cast<int32_t>(std::min(first_word + t, lanes_ - 1));
      }
      for (size_t i = 0; i < 4; ++i) {
        const size_t lane = block * 4 + i;
        const size_t bit = lane * kCodesPerLane * kBits;
        const size_t rel = bit / 8 - first_word * 4;
        for (size_t t = 0; t < 4; ++t) {
          byte_index_[lane * 4 + t] = rel + t < 16 ? static_cast<uint8_t>(rel + t) : 0x80;
        }
        bit_shift_[lane] = static_cast<uint32_t>(bit % 8);
      }
    }
  }

  size_t lanes_;
  HWY_ALIGN int32_t word_index_[kMaxLanes32] = {};
  HWY_ALIGN uint8_t byte_index_[HWY_MAX_BYTES] = {};
  HWY_ALIGN uint32_t bit_shift_[kMaxLanes32] = {};
  HWY_ALIGN uint32_t in_place_masks_[kCodesPerLane * kMaxLanes32] = {};
};

// Sizes of one affine matrix in decode order for this target and bit width.
struct AffineLayout {
  size_t lanes = 0;
  size_t codes_per_lane = 0;
  size_t codes_per_vector = 0;
  size_t vectors_per_row = 0;  // ceil(cols / codes_per_vector)
  size_t padded_cols = 0;      // vectors_per_row * codes_per_vector
  size_t groups_per_row = 0;
  size_t padded_groups = 0;  // scale/bias buffer length: every lane's group index is below it
  int group_shift = 0;       // log2(group_size)
  bool vector_in_one_group = false;  // every code vector lies within one group
  size_t row_bytes = 0;
  // lane i of a vector belongs to group (v*cpv >> group_shift) + lane_group[i].
  HWY_ALIGN int32_t lane_group[kMaxLanes32] = {};
};

inline AffineLayout MakeAffineLayout(const MatrixView& w) {
  AffineLayout L;
  L.lanes = hn::Lanes(hn::ScalableTag<float>());
  L.codes_per_lane = CodesPerLane(w.bits);
  L.codes_per_vector = L.lanes * L.codes_per_lane;
  L.vectors_per_row = (w.cols + L.codes_per_vector - 1) / L.codes_per_vector;
  L.padded_cols = L.vectors_per_row * L.codes_per_vector;
  L.groups_per_row = w.groups_per_row();
  while ((size_t{1} << L.group_shift) < static_cast<size_t>(w.group_size)) ++L.group_shift;
  L.padded_groups = (L.padded_cols >> L.group_shift) + L.lanes + 1;
  L.row_bytes = w.packed_words_per_row() * 4;
  L.vector_in_one_group = L.codes_per_vector <= (size_t{1} << L.group_shift);
  for (size_t i = 0; i < L.lanes; ++i) {
    L.lane_group[i] = static_cast<int32_t>((i * L.codes_per_lane) >> L.group_shift);
  }
  return L;
}

// out[v*cpv + k*N + i] = x[v*cpv + i*c + k] * 2^-shift[k] (decode order; shift = 0 or the unpacker's
// InPlaceShift), zero past cols. out has padded_cols floats. Power-of-two scaling is exact unless the
// value drops below the normal range (|x| < 2^-98 for the largest shift of 28).
inline void PermuteActivations(const AffineLayout& L, const float* x, size_t cols, float* out,
                               const int* shift = nullptr) {
  float factors[16];
  for (size_t k = 0; shift && k < L.codes_per_lane; ++k) factors[k] = std::ldexp(1.0f, -shift[k]);
  for (size_t v = 0; v < L.vectors_per_row; ++v) {
    const size_t base = v * L.codes_per_vector;
    for (size_t k = 0; k < L.codes_per_lane; ++k) {
      const float factor = shift ? factors[k] : 1.0f;
      for (size_t i = 0; i < L.lanes; ++i) {
        const size_t col = base + i * L.codes_per_lane + k;
        out[base + k * L.lanes + i] = col < cols ? x[col] * factor : 0.0f;
      }
    }
  }
}

// One worker's buffers for a block of up to kRowBlock consecutive rows: their scales and biases as f32
// (converted in one call; row stride groups_per_row, zero after the last row), and a padded copy of the
// matrix's last row so that the unpacker's over-read stays inside owned memory.
// Lanes past the end of a row (its last vector, when cols is not a multiple of the codes per vector)
// read the next row's codes and scales; their activations are zero, so they add exactly 0 (as long as
// the neighbouring scales are finite).
class AffineRowBuffers {
 public:
  static constexpr size_t kRowBlock = 16;

  void Prepare(const AffineLayout& L) {
    const size_t size = kRowBlock * L.groups_per_row + L.padded_groups;
    scales_.assign(size, 0.0f);
    biases_.assign(size, 0.0f);
    last_row_.assign(L.row_bytes + HWY_MAX_BYTES + 16, 0);
  }

  // Converts the scales and biases of rows [first, first + count), count <= kRowBlock.
  void LoadBlock(const MatrixView& w, const AffineLayout& L, size_t first, size_t count) {
    const size_t n = count * L.groups_per_row;
    const size_t offset = first * L.groups_per_row * dtype_size(w.scale_type);
    ConvertToF32Row(w.scale_type, static_cast<const uint8_t*>(w.scales) + offset, n, scales_.data());
    ConvertToF32Row(w.scale_type, static_cast<const uint8_t*>(w.biases) + offset, n, biases_.data());
    std::fill(scales_.begin() + n, scales_.begin() + n + L.padded_groups, 0.0f);
    std::fill(biases_.begin() + n, biases_.begin() + n + L.padded_groups, 0.0f);
  }

  // Hints the scales and biases of rows [first, first + count) (clamped to the matrix) into the cache.
  // They are two streams of their own, 1/8 to 1/16 the bytes of the codes, converted in bursts of a
  // block: without prefetching, their misses took 13 % of 4-bit decode.
  static void PrefetchParams(const MatrixView& w, const AffineLayout& L, size_t first, size_t count) {
    if (first >= w.rows) return;
    count = std::min(count, w.rows - first);
    const size_t stride = L.groups_per_row * dtype_size(w.scale_type);
    const size_t begin = first * stride, end = (first + count) * stride;
    for (size_t b = begin; b < end; b += 64) {
      hwy::Prefetch(static_cast<const uint8_t*>(w.scales) + b);
      hwy::Prefetch(static_cast<const uint8_t*>(w.biases) + b);
    }
  }

  // Row r's packed bytes (r in the matrix), readable past the row end by one vector load.
  const uint8_t* Row(const MatrixView& w, const AffineLayout& L, size_t r) {
    const uint8_t* row = static_cast<const uint8_t*>(w.data) + r * L.row_bytes;
    if (r + 1 < w.rows) return row;
    std::memcpy(last_row_.data(), row, L.row_bytes);
    return last_row_.data();
  }

  // Scales and biases of the i-th row of the loaded block.
  const float* scales(const AffineLayout& L, size_t i) const { return scales_.data() + i * L.groups_per_row; }
  const float* biases(const AffineLayout& L, size_t i) const { return biases_.data() + i * L.groups_per_row; }

 private:
  std::vector<float> scales_;
  std::vector<float> biases_;
  std::vector<uint8_t> last_row_;
};

inline AffineRowBuffers& ThreadRowBuffers() {
  thread_local AffineRowBuffers buffers;
  return buffers;
}

// The scale (or bias) of every lane of vector v, from a buffer filled by AffineRowBuffers.
template <class DF>
HWY_INLINE hn::Vec<DF> LaneGroupValues(DF df, const AffineLayout& L, const float* per_group,
                                       size_t v) {
  const auto index = hn::SetTableIndices(df, L.lane_group);
  return hn::TableLookupLanes(hn::LoadU(df, per_group + ((v * L.codes_per_vector) >> L.group_shift)),
                              index);
}

}  // namespace quantlab::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // QUANTLAB_KERNELS_AFFINE_UNPACK_INL_H_
