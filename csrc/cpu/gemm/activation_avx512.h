// AVX-512 activations for the GEMM epilogue (applied while a tile is in registers).
// Include only from *_avx512.cpp files: everything here is static inline.
//
//   exp:       Cephes expf scheme: n = round(x*log2 e), r = x - n*ln2 (two-part ln2),
//              degree-6 polynomial on |r| <= ln2/2, scaled by 2^n (scalef). ~2 ulp.
//   gelu_tanh: 0.5x(1 + tanh(z)) == x * sigmoid(2z) == x / (1 + exp(-2z)),
//              z = sqrt(2/pi) (x + 0.044715 x^3).
//   gelu_erf:  0.5x(1 + erf(x/sqrt2)) == 0.5x * erfc(-x/sqrt2). erfc(u), u >= 0, follows
//              Numerical Recipes' erfcc (fractional error < 1.2e-7 for all u >= 0):
//              erfc(u) = t exp(-u^2 + P(t)), t = 1/(1 + u/2). exp(-u^2) is evaluated
//              from x^2/2 split exactly into hi + lo with an FMA, so the large exponent
//              carries no rounding error; erfc(-u) = 2 - erfc(u). Relative error of the
//              result ~ 1e-6 or better (tests/test_gemm.py checks it).
#pragma once
#include <immintrin.h>

namespace nnf {
namespace avx512 {

static inline __m512 exp_ps(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.33654f)), _mm512_set1_ps(88.02969f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, n);
}

static inline __m512 gelu_tanh_ps(__m512 x) {
  const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
  const __m512 z = _mm512_mul_ps(_mm512_set1_ps(0.7978845608028654f),
                                 _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x3, x));
  const __m512 e = exp_ps(_mm512_mul_ps(_mm512_set1_ps(-2.0f), z));
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

// erfc(u) for u = |x|/sqrt2 >= 0, given x (see header comment).
static inline __m512 erfc_abs_ps(__m512 x) {
  const __m512 ax = _mm512_abs_ps(x);
  const __m512 u = _mm512_mul_ps(ax, _mm512_set1_ps(0.70710678118654752f));
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(0.5f), u, one));
  __m512 p = _mm512_set1_ps(0.17087277f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.82215223f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.48851587f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.13520398f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.27886807f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.18628806f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.09678418f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.37409196f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.00002368f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.26551223f));
  // u^2 = x^2/2 exactly as 0.5*(hi + lo).
  const __m512 x2h = _mm512_mul_ps(x, x);
  const __m512 x2l = _mm512_fmsub_ps(x, x, x2h);
  const __m512 half = _mm512_set1_ps(0.5f);
  __m512 g = exp_ps(_mm512_mul_ps(_mm512_set1_ps(-0.5f), x2h));
  g = _mm512_mul_ps(g, _mm512_fnmadd_ps(half, x2l, one));  // * exp(-lo/2), |lo/2| tiny
  return _mm512_mul_ps(_mm512_mul_ps(t, g), exp_ps(p));
}

static inline __m512 gelu_erf_ps(__m512 x) {
  const __m512 e = erfc_abs_ps(x);
  const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  // 1 + erf(x/sqrt2) = erfc(-x/sqrt2): e for x < 0, 2 - e otherwise.
  const __m512 s = _mm512_mask_mov_ps(_mm512_sub_ps(_mm512_set1_ps(2.0f), e), neg, e);
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), s);
}

// act: 0 none, 1 relu, 2 gelu_tanh, 3 gelu_erf (nnf::Activation).
static inline __m512 activate_ps(__m512 v, int act) {
  switch (act) {
    case 1: return _mm512_max_ps(_mm512_setzero_ps(), v);  // max_ps returns its 2nd operand for NaN
    case 2: return gelu_tanh_ps(v);
    case 3: return gelu_erf_ps(v);
    default: return v;
  }
}

}  // namespace avx512
}  // namespace nnf
