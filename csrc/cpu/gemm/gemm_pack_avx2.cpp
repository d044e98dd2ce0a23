// AVX2 transposing pack (layouts in gemm_pack.h), used by the avx2_6x16p variant.
//
//   dst[p*W + j] = src[j*ss + p],  j < W (6: row-major A panel; 16: column-major B panel
//   such as W.T in dX = dy @ W.T)
//
// 8 x 8 blocks: 8 ymm row loads (rows past W are zeros), the 3-stage unpack / shuffle /
// permute2f128 transpose (24 shuffles), then one store per k: ~2.7 floats per shuffle
// against ~2 for the SSE 4 x 4 version, whose 6-row panels also left 2 rows scalar.
// W = 6: the 6 useful floats of column p go to dst + 6p, so full 8-float stores in
// increasing p overlap the next column's slot and are overwritten by it; the last
// column of a block is stored as 4 + 2 floats so nothing past the block is written.
// The kc % 8 tail is scalar.
#include <immintrin.h>

#include <cstdint>

namespace nnf {
namespace avx2 {

namespace {

// r[0..7] rows in, columns out (r[q] lane i = old r[i] lane q).
inline __attribute__((always_inline)) void transpose8(__m256 r[8]) {
  __m256 t[8];
  for (int i = 0; i < 4; ++i) {  // 32-bit interleave of row pairs
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // 64-bit interleave: s[4h + c] holds rows 4h..4h+3 of columns c and c+4 (per 128-bit lane).
  __m256 s[8];
  for (int h = 0; h < 2; ++h) {
    const __m256 a = t[4 * h], b = t[4 * h + 1], c = t[4 * h + 2], d = t[4 * h + 3];
    s[4 * h + 0] = _mm256_shuffle_ps(a, c, _MM_SHUFFLE(1, 0, 1, 0));
    s[4 * h + 1] = _mm256_shuffle_ps(a, c, _MM_SHUFFLE(3, 2, 3, 2));
    s[4 * h + 2] = _mm256_shuffle_ps(b, d, _MM_SHUFFLE(1, 0, 1, 0));
    s[4 * h + 3] = _mm256_shuffle_ps(b, d, _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int c = 0; c < 4; ++c) {  // low lanes: column c; high lanes: column c + 4
    r[c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x20);
    r[c + 4] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x31);
  }
}

template <int W>
void transpose_pack(int64_t kc, const float* src, int64_t ss, float* dst) {
  static_assert(W == 6 || W % 8 == 0, "W: 6 or a multiple of 8");
  const int64_t kc8 = kc & ~int64_t(7);
  for (int j0 = 0; j0 < W; j0 += 8) {
    const int rows = W - j0 < 8 ? W - j0 : 8;
    for (int64_t p0 = 0; p0 < kc8; p0 += 8) {
      __m256 r[8];
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i)
        r[i] = i < rows ? _mm256_loadu_ps(src + (j0 + i) * ss + p0) : _mm256_setzero_ps();
      transpose8(r);
      float* d = dst + p0 * W + j0;
      if (W == 6) {
#pragma GCC unroll 7
        for (int q = 0; q < 7; ++q) _mm256_storeu_ps(d + q * W, r[q]);
        const __m128 lo = _mm256_castps256_ps128(r[7]);
        _mm_storeu_ps(d + 7 * W, lo);
        _mm_storel_pi(reinterpret_cast<__m64*>(d + 7 * W + 4),
                      _mm256_extractf128_ps(r[7], 1));
      } else {
#pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) _mm256_storeu_ps(d + q * W, r[q]);
      }
    }
    for (int64_t p = kc8; p < kc; ++p)
      for (int i = 0; i < rows; ++i) dst[p * W + j0 + i] = src[(j0 + i) * ss + p];
  }
}

}  // namespace

void transpose_pack_avx2_6(int64_t kc, const float* src, int64_t ss, float* dst) {
  transpose_pack<6>(kc, src, ss, dst);
}
void transpose_pack_avx2_16(int64_t kc, const float* src, int64_t ss, float* dst) {
  transpose_pack<16>(kc, src, ss, dst);
}

}  // namespace avx2
}  // namespace nnf
