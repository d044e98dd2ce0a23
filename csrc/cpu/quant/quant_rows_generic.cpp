// Scalar row loops (contract in quant_rows.h): the definition the SIMD paths reproduce.
#include <algorithm>

#include "cpu/quant/quant_rows.h"
#include "cpu/quant/quant_rows_scalar.h"

namespace nnf {
namespace quant {

NNF_DEFINE_DISPATCH("quant", row_range_stub);
NNF_DEFINE_DISPATCH("quant", quantize_row_stub);
NNF_DEFINE_DISPATCH("quant", dequant_row_stub);

}  // namespace quant
namespace generic {
namespace {

void row_range(int64_t k, const float* x, float* lo, float* hi) {
  float l = 0.0f, h = 0.0f;
  for (int64_t t = 0; t < k; ++t) {
    l = std::min(l, x[t]);
    h = std::max(h, x[t]);
  }
  *lo = l;
  *hi = h;
}

void quantize_row(int64_t k, const float* x, double scale, int32_t zp, uint8_t* out) {
  for (int64_t t = 0; t < k; ++t) out[t] = uint8_t(quant::quantize_one(x[t], scale, zp, 0, 255));
}

void dequant_row(int64_t nc, const int32_t* acc, int32_t zp, float sx, const int32_t* col_sums,
                 const float* w_scales, const float* bias, int act, float* y) {
  for (int64_t j = 0; j < nc; ++j)
    y[j] = quant::dequant_one(acc[j], zp, col_sums[j], sx, w_scales[j], bias ? bias[j] : 0.0f, act);
}

}  // namespace
}  // namespace generic
namespace quant {
NNF_REGISTER_DISPATCH(quant::row_range_stub, ::nnf::Slot::generic, generic::row_range);
NNF_REGISTER_DISPATCH(quant::quantize_row_stub, ::nnf::Slot::generic, generic::quantize_row);
NNF_REGISTER_DISPATCH(quant::dequant_row_stub, ::nnf::Slot::generic, generic::dequant_row);
}  // namespace quant
}  // namespace nnf
