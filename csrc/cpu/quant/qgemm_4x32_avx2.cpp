// AVX2 int8 panel kernel without VNNI. vpmaddubsw (u8 x s8 -> s16 pairs) saturates:
// 255 * 127 * 2 > 32767. So both operands are widened to int16 first and multiplied
// with vpmaddwd (s16 x s16 -> s32 pair sums, exact: 2 * 255 * 128 < 2^31).
//
// Per group of 4 k: a ymm of 16 int16 holds 4 columns x 4 k of the panel; an A row's
// 4 bytes broadcast as [a0 a1 a2 a3] x 4 in int16; vpmaddwd gives per column the two
// pair sums (a0 b0 + a1 b1, a2 b2 + a3 b3) in adjacent int32 lanes, folded at the end.
// Tile: 4 rows x 8 columns (2 ymm of B, 8 accumulators), looped over the 32-wide panel.
#include <immintrin.h>

#include <algorithm>

#include "cpu/quant/qgemm_kernel.h"

namespace nnf {
namespace avx2 {
namespace {

template <int MR>
void tile_8cols(int64_t kg, const uint8_t* a, int64_t lda, const int8_t* panel, int64_t col0, int32_t* c) {
  __m256i acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
  for (int64_t g = 0; g < kg; ++g) {
    const int8_t* b = panel + (g * kQNr + col0) * 4;  // 8 columns x 4 k = 32 bytes
    const __m256i b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)));
    const __m256i b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16)));
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      int32_t four;
      __builtin_memcpy(&four, a + i * lda + 4 * g, 4);
      const __m256i av = _mm256_cvtepu8_epi16(_mm_set1_epi32(four));
      acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(av, b0));
      acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(av, b1));
    }
  }
  for (int i = 0; i < MR; ++i) {
    // lanes (c0 lo, c0 hi, c1 lo, c1 hi | c2.., c3..) and (c4..c7): hadd pairs, fix lane order.
    const __m256i s = _mm256_hadd_epi32(acc[i][0], acc[i][1]);  // c0 c1 c4 c5 | c2 c3 c6 c7
    const __m256i r = _mm256_permutevar8x32_epi32(s, _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + i * kQNr + col0), r);
  }
}

template <int MR>
void rows(int64_t kg, const uint8_t* a, int64_t lda, const int8_t* panel, int32_t* c) {
  for (int64_t col0 = 0; col0 < kQNr; col0 += 8) tile_8cols<MR>(kg, a, lda, panel, col0, c);
}

}  // namespace

void qgemm_panel_4x32(int64_t mc, int64_t kg, const uint8_t* a, int64_t lda, const int8_t* panel, int32_t* c) {
  int64_t i = 0;
  for (; i + 4 <= mc; i += 4) rows<4>(kg, a + i * lda, lda, panel, c + i * kQNr);
  switch (mc - i) {
    case 3: rows<3>(kg, a + i * lda, lda, panel, c + i * kQNr); break;
    case 2: rows<2>(kg, a + i * lda, lda, panel, c + i * kQNr); break;
    case 1: rows<1>(kg, a + i * lda, lda, panel, c + i * kQNr); break;
    default: break;
  }
}

}  // namespace avx2
namespace quant {
NNF_REGISTER_DISPATCH(quant::qgemm_panel_stub, ::nnf::Slot::avx2, avx2::qgemm_panel_4x32);
}
}  // namespace nnf
