// Element-wise quantise / dequantise over (outer, c, inner) C-contiguous views.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/threads.h"
#include "cpu/quant/quant.h"
#include "cpu/quant/quant_rows.h"
#include "cpu/quant/quant_rows_scalar.h"

namespace nnf {
namespace quant {

// Branch-free integer tests over blocks (the compiler vectorises the OR reduction), with
// an early exit between blocks.
namespace {
template <class Bad>
bool any_bits(const float* x, int64_t n, const Bad& bad) {
  constexpr int64_t kBlock = 1024;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = std::min(n, b + kBlock);
    uint32_t found = 0;
    for (int64_t i = b; i < e; ++i) {
      uint32_t u;
      std::memcpy(&u, x + i, 4);
      found |= uint32_t(bad(u));
    }
    if (found) return true;
  }
  return false;
}
}  // namespace

bool has_nan(const float* x, int64_t n) {
  return any_bits(x, n, [](uint32_t u) { return (u & 0x7fffffffu) > 0x7f800000u; });
}

bool all_finite(const float* x, int64_t n) {
  return !any_bits(x, n, [](uint32_t u) { return (u & 0x7f800000u) == 0x7f800000u; });
}

void quantize(const float* x, int64_t outer, int64_t c, int64_t inner, const float* scale, const int32_t* zp,
              bool is_u8, void* q) {
  const int64_t rows = outer * c;
  const QuantizeRowFn quantize_row = quantize_row_stub.get();
  const int nt = std::max(1, std::min<int>(threads_for(double(rows * inner)), int(std::max<int64_t>(rows, 1))));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t ch = r % c;
    const float* xr = x + r * inner;
    if (is_u8) {
      quantize_row(inner, xr, scale[ch], zp[ch], static_cast<uint8_t*>(q) + r * inner);
      continue;
    }
    int8_t* qr = static_cast<int8_t*>(q) + r * inner;
    for (int64_t i = 0; i < inner; ++i) qr[i] = int8_t(quantize_one(xr[i], scale[ch], zp[ch], -128, 127));
  }
}

void dequantize(const void* q, bool is_u8, int64_t outer, int64_t c, int64_t inner, const float* scale,
                const int32_t* zp, float* out) {
  const int64_t rows = outer * c;
  const int nt = std::max(1, std::min<int>(threads_for(double(rows * inner)), int(std::max<int64_t>(rows, 1))));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t ch = r % c;
    const double s = scale[ch], z = zp[ch];
    for (int64_t i = 0; i < inner; ++i) {
      const double v = is_u8 ? double(static_cast<const uint8_t*>(q)[r * inner + i])
                             : double(static_cast<const int8_t*>(q)[r * inner + i]);
      out[r * inner + i] = float((v - z) * s);
    }
  }
}

}  // namespace quant
}  // namespace nnf
