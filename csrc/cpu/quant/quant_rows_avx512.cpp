// AVX-512 row loops (contract and reference: quant_rows.h, quant_rows_generic.cpp).
// Same operations in the same order per element as the scalar loops, so the same bits;
// the rounding divides in double (8 lanes) to keep the exact quotient.
// GCC 12 warns on _mm512_undefined_* inside its own intrinsics headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
// No FMA contraction of mul + add: the scalar definition rounds twice.
#pragma GCC optimize("fp-contract=off")
#include <immintrin.h>

#include <algorithm>

#include "cpu/gemm/activation_scalar.h"
#include "cpu/quant/quant_rows.h"

namespace nnf {
namespace avx512 {
namespace {

void row_range(int64_t k, const float* x, float* lo, float* hi) {
  __m512 l = _mm512_setzero_ps(), h = _mm512_setzero_ps();
  int64_t t = 0;
  for (; t + 16 <= k; t += 16) {
    const __m512 v = _mm512_loadu_ps(x + t);
    l = _mm512_min_ps(v, l);  // vminps returns the second operand for a NaN: l stays
    h = _mm512_max_ps(v, h);
  }
  float lv = _mm512_reduce_min_ps(l), hv = _mm512_reduce_max_ps(h);
  for (; t < k; ++t) {
    lv = std::min(lv, x[t]);
    hv = std::max(hv, x[t]);
  }
  *lo = lv;
  *hi = hv;
}

// 8 floats -> 8 codes in int32 lanes: clamp(rint(x / scale) + zp, 0, 255). The quotient
// is x * (1 / scale) (within 2^-52 relative of x / scale), divided exactly only in lanes
// that lie within 1e-12 relative of a half-integer, where the two could round apart.
inline __m256i codes8(__m256 x, __m512d scale, __m512d inv, __m512d zp) {
  const __m512d xd = _mm512_cvtps_pd(x);
  __m512d q = _mm512_mul_pd(xd, inv);
  const __m512d frac = _mm512_sub_pd(q, _mm512_roundscale_pd(q, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC));
  const __m512d to_half = _mm512_abs_pd(_mm512_sub_pd(frac, _mm512_set1_pd(0.5)));
  const __mmask8 near = _mm512_cmp_pd_mask(to_half, _mm512_mul_pd(_mm512_abs_pd(q), _mm512_set1_pd(1e-12)),
                                           _CMP_LE_OQ);
  if (near) q = _mm512_mask_div_pd(q, near, xd, scale);
  __m512d r = _mm512_add_pd(_mm512_roundscale_pd(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zp);
  r = _mm512_min_pd(_mm512_set1_pd(255.0), _mm512_max_pd(r, _mm512_setzero_pd()));  // NaN -> 0
  return _mm512_cvttpd_epi32(r);
}

void quantize_row(int64_t k, const float* x, double scale, int32_t zp, uint8_t* out) {
  const __m512d s = _mm512_set1_pd(scale), inv = _mm512_set1_pd(1.0 / scale), z = _mm512_set1_pd(double(zp));
  int64_t t = 0;
  for (; t + 16 <= k; t += 16) {
    const __m512 v = _mm512_loadu_ps(x + t);
    const __m256i lo = codes8(_mm512_castps512_ps256(v), s, inv, z);
    const __m256i hi = codes8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)), s, inv, z);
    const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + t), _mm512_cvtepi32_epi8(both));
  }
  if (t < k) {
    const __mmask16 m = __mmask16((1u << (k - t)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + t);
    const __m256i lo = codes8(_mm512_castps512_ps256(v), s, inv, z);
    const __m256i hi = codes8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)), s, inv, z);
    const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    _mm_mask_storeu_epi8(out + t, m, _mm512_cvtepi32_epi8(both));
  }
}

void dequant_row(int64_t nc, const int32_t* acc, int32_t zp, float sx, const int32_t* col_sums,
                 const float* w_scales, const float* bias, int act, float* y) {
  const __m512i z = _mm512_set1_epi32(zp);
  const __m512 s = _mm512_set1_ps(sx), zero = _mm512_setzero_ps();
  for (int64_t j = 0; j < nc; j += 16) {
    const __mmask16 m = nc - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (nc - j)) - 1u);
    const __m512i exact = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(m, acc + j),
                                           _mm512_mullo_epi32(z, _mm512_maskz_loadu_epi32(m, col_sums + j)));
    const __m512 scale = _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, w_scales + j));
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(exact), scale);
    v = _mm512_add_ps(v, bias ? _mm512_maskz_loadu_ps(m, bias + j) : zero);
    if (act == 1) v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), v, zero);  // NaN kept
    _mm512_mask_storeu_ps(y + j, m, v);
  }
  if (act > 1)
    for (int64_t j = 0; j < nc; ++j) y[j] = gemm::activate_scalar(y[j], act);
}

}  // namespace
}  // namespace avx512
namespace quant {
NNF_REGISTER_DISPATCH(quant::row_range_stub, ::nnf::Slot::avx512, avx512::row_range);
NNF_REGISTER_DISPATCH(quant::quantize_row_stub, ::nnf::Slot::avx512, avx512::quantize_row);
NNF_REGISTER_DISPATCH(quant::dequant_row_stub, ::nnf::Slot::avx512, avx512::dequant_row);
}  // namespace quant
}  // namespace nnf
