// Max pool, 2x2 windows, stride 2, no padding (v3; see pool.per_isa.cpp for v1/v2).
//
// x (planes, h, w) -> y, idx (planes, ho, wo). Eight outputs per step: the two input
// rows' 16 floats each are split into even/odd columns (a b / c d taps), the taps
// are folded in row-major order with torch's rule (take v if v > m or v is NaN:
// first maximum wins ties, the last NaN wins), and the tap's offset {0, 1, w, w+1}
// rides along as an int32 lane, widened to the int64 index at the store. Row tails
// (wo not a multiple of 8; the CNN's 14 and 7) use masked loads and stores instead
// of a scalar loop, which dominated v2 on such short rows. Masked stores are slow on
// AMD Zen (microcoded vmaskmov), so a tail is stored whole when the overhang lands in
// later output rows of the same plane (rewritten right after, by the same thread),
// and only the plane's last outputs go through a small buffer; tail loads are whole
// when the 16 floats stay inside the plane.
#include <immintrin.h>

#include "cpu/pool/pool_isa.h"

namespace nnf {
namespace avx2 {
namespace {

inline __m256i lanes_below(int64_t n) {  // int32 lanes i < n (n may be <= 0 or > 8)
  const int32_t c = n < 0 ? 0 : (n > 8 ? 8 : int32_t(n));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// 16 consecutive floats (lo, hi) -> even columns and odd columns, each in order.
inline void split(__m256 lo, __m256 hi, __m256& even, __m256& odd) {
  const __m256 e = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));  // lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6
  const __m256 o = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
  even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
  odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}

// m, off <- v, code where v > m or v is NaN.
inline void take(__m256 v, __m256i code, __m256& m, __m256i& off) {
  const __m256 t = _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  m = _mm256_blendv_ps(m, v, t);
  off = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(off), _mm256_castsi256_ps(code), t));
}

// n (1..8) outputs starting at column ow of one output row. whole_load: the 16 floats
// from each row start stay inside the plane; whole_store: 8 outputs may be written.
inline void step(const float* r0, const float* r1, int64_t ow, int64_t n, int64_t base, int64_t w,
                 float* yr, int64_t* ir, bool whole_load, bool whole_store) {
  const float* p0 = r0 + 2 * ow;
  const float* p1 = r1 + 2 * ow;
  __m256 a0, a1, b0, b1;
  if (n == 8 || whole_load) {
    a0 = _mm256_loadu_ps(p0), a1 = _mm256_loadu_ps(p0 + 8);
    b0 = _mm256_loadu_ps(p1), b1 = _mm256_loadu_ps(p1 + 8);
  } else {  // never touch memory past the 2n floats of each row
    const __m256i mlo = lanes_below(2 * n), mhi = lanes_below(2 * n - 8);
    a0 = _mm256_maskload_ps(p0, mlo), a1 = _mm256_maskload_ps(p0 + 8, mhi);
    b0 = _mm256_maskload_ps(p1, mlo), b1 = _mm256_maskload_ps(p1 + 8, mhi);
  }
  __m256 a, b, c, d;
  split(a0, a1, a, b);
  split(b0, b1, c, d);
  __m256 m = a;
  __m256i off = _mm256_setzero_si256();
  take(b, _mm256_set1_epi32(1), m, off);
  take(c, _mm256_set1_epi32(int32_t(w)), m, off);
  take(d, _mm256_set1_epi32(int32_t(w + 1)), m, off);
  // index = base + 2 * (ow + lane) + off
  const __m256i rel = _mm256_add_epi32(off, _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14));
  const __m256i start = _mm256_set1_epi64x(base + 2 * ow);
  const __m256i i0 = _mm256_add_epi64(start, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(rel)));
  const __m256i i1 = _mm256_add_epi64(start, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(rel, 1)));
  if (n == 8 || whole_store) {
    _mm256_storeu_ps(yr + ow, m);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(ir + ow), i0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(ir + ow + 4), i1);
  } else {
    alignas(32) float ybuf[8];
    alignas(32) int64_t ibuf[8];
    _mm256_store_ps(ybuf, m);
    _mm256_store_si256(reinterpret_cast<__m256i*>(ibuf), i0);
    _mm256_store_si256(reinterpret_cast<__m256i*>(ibuf + 4), i1);
    for (int64_t j = 0; j < n; ++j) {
      yr[ow + j] = ybuf[j];
      ir[ow + j] = ibuf[j];
    }
  }
}

void plane(const PoolGeometry& g, const float* x, float* y, int64_t* idx) {
  const int64_t w = g.w, wo = g.wo, in = g.h * g.w;
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    const float* r0 = x + 2 * oh * w;
    float* yr = y + oh * wo;
    int64_t* ir = idx + oh * wo;
    for (int64_t ow = 0; ow < wo; ow += 8) {
      const bool whole_load = (2 * oh + 1) * w + 2 * ow + 16 <= in;
      // the overhang lands in later rows of this plane, which are written after this one
      const bool whole_store = oh * wo + ow + 8 <= g.ho * wo;
      step(r0, r0 + w, ow, wo - ow < 8 ? wo - ow : 8, 2 * oh * w, w, yr, ir, whole_load, whole_store);
    }
  }
}

}  // namespace

void max_pool2d_2x2s2_planes(const PoolGeometry& g, const float* x, float* y, int64_t* idx, int nt) {
  const int64_t in = g.h * g.w, out = g.ho * g.wo;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t p = 0; p < g.planes; ++p) plane(g, x + p * in, y + p * out, idx + p * out);
}

NNF_REGISTER_DISPATCH(pool::max_pool2d_2x2s2_stub, Slot::avx2, max_pool2d_2x2s2_planes);

}  // namespace avx2
}  // namespace nnf
