// GPTQ's in-block column step with rows in the vector lanes (kernels/gptq_columns.h). Compiled once per
// Highway target; the rows go a vector at a time (outer loop), so one vector's block of columns — at
// most 128 × 16 floats — stays in L1 while its columns are rounded in order.
#include "kernels/highway_config.h"  // must precede the hwy includes

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/gptq_columns.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep

#include <algorithm>
#include <cmath>

#include "hwy/highway.h"
#include "kernels/gptq_columns.h"

HWY_BEFORE_NAMESPACE();
namespace quantlab::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Columns [first, last) for the lanes of d starting at row r.
template <class D>
HWY_INLINE void RoundLanes(D d, float* x, size_t rows, size_t r, size_t width, size_t first, size_t last,
                           const float* u, size_t u_stride, const float* scales, const float* biases,
                           size_t param_stride, int max_code, uint8_t* codes, float* errors, float* rounded) {
  const hn::RebindToSigned<D> di;
  const auto zero = hn::Zero(d);
  const auto top = hn::Set(d, static_cast<float>(max_code));
  for (size_t k = first; k < last; ++k) {
    const size_t at = k * rows + r;
    const auto value = hn::LoadU(d, x + at);
    const auto scale = hn::LoadU(d, scales + k * param_stride + r);
    const auto bias = hn::LoadU(d, biases + k * param_stride + r);
    const auto flat = hn::Eq(scale, zero);
    const auto ratio = hn::Div(hn::Sub(value, bias), hn::IfThenElse(flat, hn::Set(d, 1.0f), scale));
    const auto code = hn::IfThenZeroElse(flat, hn::Min(hn::Max(hn::Round(ratio), zero), top));
    const auto stored = hn::MulAdd(code, scale, bias);
    const auto error = hn::Div(hn::Sub(value, stored), hn::Set(d, u[k * u_stride + k]));
    hn::StoreU(error, d, errors + at);
    if (rounded != nullptr) hn::StoreU(stored, d, rounded + at);
    const auto whole = hn::ConvertTo(di, code);
    HWY_ALIGN int32_t lanes[HWY_MAX_BYTES / sizeof(int32_t)];
    hn::Store(whole, di, lanes);
    for (size_t i = 0; i < hn::Lanes(d); ++i) codes[at + i] = static_cast<uint8_t>(lanes[i]);
    const float* row = u + k * u_stride;
    for (size_t m = k + 1; m < width; ++m) {
      float* target = x + m * rows + r;
      hn::StoreU(hn::NegMulAdd(error, hn::Set(d, row[m]), hn::LoadU(d, target)), d, target);
    }
  }
}

void GptqRoundColumnsImpl(float* x, size_t rows, size_t width, size_t first, size_t last, const float* u,
                          size_t u_stride, const float* scales, const float* biases, size_t param_stride, int max_code,
                          uint8_t* codes, float* errors, float* rounded) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  size_t r = 0;
  for (; r + N <= rows; r += N)
    RoundLanes(df, x, rows, r, width, first, last, u, u_stride, scales, biases, param_stride, max_code, codes, errors,
               rounded);
  for (; r < rows; ++r)
    RoundLanes(hn::CappedTag<float, 1>(), x, rows, r, width, first, last, u, u_stride, scales, biases, param_stride,
               max_code, codes, errors, rounded);
}

}  // namespace quantlab::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace quantlab::kernels {

HWY_EXPORT(GptqRoundColumnsImpl);

void gptq_round_columns(float* x, size_t rows, size_t width, size_t first, size_t last, const float* u,
                        size_t u_stride, const float* scales, const float* biases, size_t param_stride, int max_code,
                        uint8_t* codes, float* errors, float* rounded) {
  HWY_DYNAMIC_DISPATCH(GptqRoundColumnsImpl)(x, rows, width, first, last, u, u_stride, scales, biases,
                                             param_stride, max_code, codes, errors, rounded);
}

void gptq_round_columns_reference(float* x, size_t rows, size_t width, size_t first, size_t last, const float* u,
                                  size_t u_stride, const float* scales, const float* biases, size_t param_stride,
                                  int max_code, uint8_t* codes, float* errors, float* rounded) {
  for (size_t r = 0; r < rows; ++r)
    for (size_t k = first; k < last; ++k) {
      const size_t at = k * rows + r;
      const float scale = scales[k * param_stride + r], bias = biases[k * param_stride + r];
      const float code =
          scale == 0 ? 0.0f : std::clamp(std::nearbyint((x[at] - bias) / scale), 0.0f, static_cast<float>(max_code));
      const float error = (x[at] - std::fma(code, scale, bias)) / u[k * u_stride + k];
      errors[at] = error;
      codes[at] = static_cast<uint8_t>(code);
      if (rounded != nullptr) rounded[at] = std::fma(code, scale, bias);
      for (size_t m = k + 1; m < width; ++m) x[m * rows + r] = std::fma(-error, u[k * u_stride + m], x[m * rows + r]);
    }
}

}  // namespace quantlab::kernels
#endif  // HWY_ONCE
