// INT8 quantisation entry points (portable; the binding csrc/bindings/bind_quant.cpp
// validates every argument before calling them).
//
// Rounding is round-half-even of the exact quotient (evaluated in double, so a float64
// reference reproduces every code). Activations are uint8 with a zero point, weights
// int8 symmetric (zero point 0) packed as qgemm_kernel.h describes.
#pragma once
#include <cstdint>

#include "cpu/conv/conv.h"
#include "cpu/gemm/gemm.h"

namespace nnf {
namespace quant {

// ---- element-wise -----------------------------------------------------------------------
// x viewed as (outer, c, inner), C-contiguous; scale / zero_point have c entries (c = 1,
// inner = numel for per-tensor). q = clamp(rint(x / scale) + zp, qmin, qmax), written as
// int8 (is_u8 false) or uint8. x must hold no NaN (the binding checks: has_nan).
bool has_nan(const float* x, int64_t n);
bool all_finite(const float* x, int64_t n);
void quantize(const float* x, int64_t outer, int64_t c, int64_t inner, const float* scale, const int32_t* zp,
              bool is_u8, void* q);
// out = (q - zp) * scale in float32 (the exact product rounded once).
void dequantize(const void* q, bool is_u8, int64_t outer, int64_t c, int64_t inner, const float* scale,
                const int32_t* zp, float* out);

// ---- packed weights -----------------------------------------------------------------------
int64_t packed_groups(int64_t k);            // ceil(k / 4)
int64_t packed_size(int64_t n, int64_t k);   // bytes of the packed (n, k) weight
// w (n, k) int8 with strides (s0, s1) in elements -> packed; col_sums[j] = sum_k w[j][k].
void pack_weight(const int8_t* w, int64_t n, int64_t k, int64_t s0, int64_t s1, int8_t* packed,
                 int32_t* col_sums);
// packed -> w (n, k) C-contiguous.
void unpack_weight(const int8_t* packed, int64_t n, int64_t k, int8_t* w);

// ---- GEMMs ---------------------------------------------------------------------------------
// c (m, n) int32 C-contiguous = a (m, k) uint8 [strides sa] x b (k, n) int8 [strides sb], exact.
void qgemm_s32(const uint8_t* a, int64_t m, int64_t k, int64_t sa0, int64_t sa1, const int8_t* b, int64_t n,
               int64_t sb0, int64_t sb1, int32_t* c);

// How activations are quantised: per row from its range (dynamic) or with one
// calibrated scale / zero point (static).
struct InputQuant {
  bool dynamic = true;
  float scale = 1.0f;
  int32_t zero_point = 0;
};

// The weight side of a qlinear / qconv2d: packed (n, k), per-column scale and sums.
struct PackedWeight {
  const int8_t* data;
  const float* scales;
  const int32_t* col_sums;
  int64_t n, k;
};

// y (m, n) float32 C-contiguous = act(dequant(q(x) x W^T) + bias); x (m, k) float32 with
// strides (sx0, sx1), finite; bias (n) or null.
void qlinear(const float* x, int64_t m, int64_t sx0, int64_t sx1, const PackedWeight& w, const float* bias,
             Activation act, const InputQuant& iq, float* y);

// y (N, K, Ho, Wo) = act(qconv(x (N, C, H, W) C-contiguous, finite) + bias), groups 1;
// the weight is (K, C*R*S) packed; padding reads the input zero point (real 0).
// Dynamic: one scale / zero point for the whole x (from its range, 0 included).
void qconv2d(const conv::ConvShape& s, const float* x, const PackedWeight& w, const float* bias, Activation act,
             const InputQuant& iq, float* y);

// The dynamic rule, shared by qlinear (per row) and qconv2d (per tensor): the range
// [min(lo, 0), max(hi, 0)] over 255 steps; scale 1, zero point 0 for an all-zero range.
InputQuant range_quant(float lo, float hi);

}  // namespace quant
}  // namespace nnf
