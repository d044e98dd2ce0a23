// One element of the int8 row loops (quant_rows.h): the scalar definitions every path
// reproduces, and the tails of the SIMD loops.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cpu/gemm/activation_scalar.h"

namespace nnf {
namespace quant {

// q = clamp(rint(v / scale) + zp, lo, hi), exact quotient in double (round half even).
inline int32_t quantize_one(float v, double scale, int32_t zp, int32_t lo, int32_t hi) {
  const double r = std::nearbyint(double(v) / scale) + double(zp);
  return int32_t(std::min(double(hi), std::max(double(lo), r)));
}

// y = act(float(acc - zp * col_sum) * (sx * sw) + bias); the difference fits int32
// (qgemm_kernel.h), so wrapping arithmetic gives it exactly.
inline float dequant_one(int32_t acc, int32_t zp, int32_t col_sum, float sx, float sw, float bias, int act) {
  const int32_t exact = int32_t(uint32_t(acc) - uint32_t(zp) * uint32_t(col_sum));
  return gemm::activate_scalar(float(exact) * (sx * sw) + bias, act);
}

}  // namespace quant
}  // namespace nnf
