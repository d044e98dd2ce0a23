// AVX2 row loops (contract and reference: quant_rows.h, quant_rows_generic.cpp). Same
// operations in the same order per element as the scalar loops, so the same bits; tails
// run the scalar definition.
// No FMA contraction of mul + add: the scalar definition rounds twice.
#pragma GCC optimize("fp-contract=off")
#include <immintrin.h>

#include <algorithm>

#include "cpu/quant/quant_rows.h"
#include "cpu/quant/quant_rows_scalar.h"

namespace nnf {
namespace avx2 {
namespace {

void row_range(int64_t k, const float* x, float* lo, float* hi) {
  __m256 l = _mm256_setzero_ps(), h = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + 8 <= k; t += 8) {
    const __m256 v = _mm256_loadu_ps(x + t);
    l = _mm256_min_ps(v, l);  // vminps returns the second operand for a NaN: l stays
    h = _mm256_max_ps(v, h);
  }
  alignas(32) float ls[8], hs[8];
  _mm256_store_ps(ls, l);
  _mm256_store_ps(hs, h);
  float lv = 0.0f, hv = 0.0f;
  for (int i = 0; i < 8; ++i) {
    lv = std::min(lv, ls[i]);
    hv = std::max(hv, hs[i]);
  }
  for (; t < k; ++t) {
    lv = std::min(lv, x[t]);
    hv = std::max(hv, x[t]);
  }
  *lo = lv;
  *hi = hv;
}

// 4 floats -> 4 codes in int32 lanes: clamp(rint(x / scale) + zp, 0, 255). The quotient
// is x * (1 / scale) (within 2^-52 relative of x / scale), divided exactly only in lanes
// that lie within 1e-12 relative of a half-integer, where the two could round apart.
inline __m128i codes4(__m128 x, __m256d scale, __m256d inv, __m256d zp) {
  const __m256d xd = _mm256_cvtps_pd(x), sign = _mm256_set1_pd(-0.0);
  __m256d q = _mm256_mul_pd(xd, inv);
  const __m256d frac = _mm256_sub_pd(q, _mm256_floor_pd(q));
  const __m256d to_half = _mm256_andnot_pd(sign, _mm256_sub_pd(frac, _mm256_set1_pd(0.5)));
  const __m256d near = _mm256_cmp_pd(to_half, _mm256_mul_pd(_mm256_andnot_pd(sign, q), _mm256_set1_pd(1e-12)),
                                     _CMP_LE_OQ);
  if (_mm256_movemask_pd(near)) q = _mm256_blendv_pd(q, _mm256_div_pd(xd, scale), near);
  __m256d r = _mm256_add_pd(_mm256_round_pd(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zp);
  r = _mm256_min_pd(_mm256_set1_pd(255.0), _mm256_max_pd(r, _mm256_setzero_pd()));  // NaN -> 0
  return _mm256_cvttpd_epi32(r);
}

void quantize_row(int64_t k, const float* x, double scale, int32_t zp, uint8_t* out) {
  const __m256d s = _mm256_set1_pd(scale), inv = _mm256_set1_pd(1.0 / scale), z = _mm256_set1_pd(double(zp));
  int64_t t = 0;
  for (; t + 8 <= k; t += 8) {
    const __m256 v = _mm256_loadu_ps(x + t);
    const __m128i lo = codes4(_mm256_castps256_ps128(v), s, inv, z), hi = codes4(_mm256_extractf128_ps(v, 1), s, inv, z);
    const __m128i w16 = _mm_packus_epi32(lo, hi);  // codes are 0..255: packing is exact
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + t), _mm_packus_epi16(w16, w16));
  }
  for (; t < k; ++t) out[t] = uint8_t(quant::quantize_one(x[t], scale, zp, 0, 255));
}

void dequant_row(int64_t nc, const int32_t* acc, int32_t zp, float sx, const int32_t* col_sums,
                 const float* w_scales, const float* bias, int act, float* y) {
  const __m256i z = _mm256_set1_epi32(zp);
  const __m256 s = _mm256_set1_ps(sx), zero = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= nc; j += 8) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + j));
    const __m256i cs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(col_sums + j));
    const __m256i exact = _mm256_sub_epi32(a, _mm256_mullo_epi32(z, cs));
    const __m256 scale = _mm256_mul_ps(s, _mm256_loadu_ps(w_scales + j));
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(exact), scale);
    v = _mm256_add_ps(v, bias ? _mm256_loadu_ps(bias + j) : zero);
    if (act == 1) v = _mm256_blendv_ps(v, zero, _mm256_cmp_ps(v, zero, _CMP_LT_OQ));  // NaN kept
    _mm256_storeu_ps(y + j, v);
  }
  if (act > 1)
    for (int64_t t = 0; t < j; ++t) y[t] = gemm::activate_scalar(y[t], act);
  for (; j < nc; ++j)
    y[j] = quant::dequant_one(acc[j], zp, col_sums[j], sx, w_scales[j], bias ? bias[j] : 0.0f, act);
}

}  // namespace
}  // namespace avx2
namespace quant {
NNF_REGISTER_DISPATCH(quant::row_range_stub, ::nnf::Slot::avx2, avx2::row_range);
NNF_REGISTER_DISPATCH(quant::quantize_row_stub, ::nnf::Slot::avx2, avx2::quantize_row);
NNF_REGISTER_DISPATCH(quant::dequant_row_stub, ::nnf::Slot::avx2, avx2::dequant_row);
}  // namespace quant
}  // namespace nnf
