// AVX-512 transposing pack (layouts in gemm_pack.h), used by the avx512_14x32t variant.
//
//   dst[p*W + j] = src[j*ss + p],  j < W (14: row-major A panel; 32: column-major B panel)
//
// 16 x 16 blocks: 16 zmm row loads, the 4-stage unpack/shuffle transpose (64 shuffles),
// 16 stores; ~4 floats per shuffle against 2 for the SSE 4 x 4 version, and no scalar
// rows (14 = 3*4 + 2 left 2 rows scalar there): rows past W load as zeros and the stores
// are masked to W lanes. The kc % 16 tail is scalar.
// GCC 12 warns on _mm512_undefined_ps inside its own intrinsics headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

namespace nnf {
namespace avx512 {

namespace {

// r[0..15] rows in, columns out in r[0..15] (r[q] lane i = old r[i] lane q).
inline __attribute__((always_inline)) void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {  // 32-bit interleave of row pairs
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // 64-bit interleave: 4 rows x 4 columns per 128-bit lane
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  // r[4i + c]: 128-bit lane L holds rows 4i..4i+3 of column 4L + c.
  for (int i = 0; i < 2; ++i)
    for (int c = 0; c < 4; ++c) {  // lanes (0,2 | 0,2) and (1,3 | 1,3) of row groups 2i, 2i+1
      const __m512 a = r[8 * i + c], b = r[8 * i + 4 + c];
      t[8 * i + c] = _mm512_shuffle_f32x4(a, b, 0x88);
      t[8 * i + 4 + c] = _mm512_shuffle_f32x4(a, b, 0xdd);
    }
  // t[c] (i=0): lanes = rows 0-3 col c, rows 0-3 col 8+c, rows 4-7 col c, rows 4-7 col 8+c.
  // t[4+c]: same for columns 4+c, 12+c. t[8+..]: rows 8-15.
  for (int h = 0; h < 2; ++h)
    for (int c = 0; c < 4; ++c) {
      const __m512 a = t[4 * h + c], b = t[8 + 4 * h + c];
      r[4 * h + c] = _mm512_shuffle_f32x4(a, b, 0x88);      // column 4h + c
      r[8 + 4 * h + c] = _mm512_shuffle_f32x4(a, b, 0xdd);  // column 8 + 4h + c
    }
}

template <int W>
void transpose_pack(int64_t kc, const float* src, int64_t ss, float* dst) {
  const int64_t kc16 = kc & ~int64_t(15);
  for (int j0 = 0; j0 < W; j0 += 16) {
    const int rows = W - j0 < 16 ? W - j0 : 16;
    const __mmask16 mask = __mmask16((1u << rows) - 1u);
    for (int64_t p0 = 0; p0 < kc16; p0 += 16) {
      __m512 r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i)
        r[i] = i < rows ? _mm512_loadu_ps(src + (j0 + i) * ss + p0) : _mm512_setzero_ps();
      transpose16(r);
#pragma GCC unroll 16
      for (int q = 0; q < 16; ++q) _mm512_mask_storeu_ps(dst + (p0 + q) * W + j0, mask, r[q]);
    }
    for (int64_t p = kc16; p < kc; ++p)
      for (int i = 0; i < rows; ++i) dst[p * W + j0 + i] = src[(j0 + i) * ss + p];
  }
}

}  // namespace

void transpose_pack_avx512_14(int64_t kc, const float* src, int64_t ss, float* dst) {
  transpose_pack<14>(kc, src, ss, dst);
}
void transpose_pack_avx512_32(int64_t kc, const float* src, int64_t ss, float* dst) {
  transpose_pack<32>(kc, src, ss, dst);
}

}  // namespace avx512
}  // namespace nnf
