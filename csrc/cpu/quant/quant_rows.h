// Row loops of the int8 frame (qgemm.cpp), one dispatch stub each, with the same
// results on every path:
//   row_range:      lo = min(0, x...), hi = max(0, x...) over k contiguous floats (a NaN
//                   never replaces lo or hi, as std::min / std::max with lo first)
//   quantize_row:   out[t] = clamp(rint(double(x[t]) / scale) + zp, 0, 255), round half even
//                   of the exact double quotient (a NaN gives 0, as the scalar clamp)
//   dequant_row:    y[j] = act(float(acc[j] - zp * col_sums[j]) * (sx * w_scales[j]) + bias[j])
//                   for j < nc; bias may be null. The difference is exact in int32 (qgemm_kernel.h).
#pragma once
#include <cstdint>

#include "common/dispatch.h"

namespace nnf {

using RowRangeFn = void (*)(int64_t k, const float* x, float* lo, float* hi);
using QuantizeRowFn = void (*)(int64_t k, const float* x, double scale, int32_t zp, uint8_t* out);
using DequantRowFn = void (*)(int64_t nc, const int32_t* acc, int32_t zp, float sx, const int32_t* col_sums,
                              const float* w_scales, const float* bias, int act, float* y);

namespace quant {
NNF_DECLARE_DISPATCH(RowRangeFn, row_range_stub);
NNF_DECLARE_DISPATCH(QuantizeRowFn, quantize_row_stub);
NNF_DECLARE_DISPATCH(DequantRowFn, dequant_row_stub);
}  // namespace quant

}  // namespace nnf
