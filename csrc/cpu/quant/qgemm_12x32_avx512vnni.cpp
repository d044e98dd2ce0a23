// AVX512_VNNI int8 panel kernel: vpdpbusd (u8 x s8, 4-byte dot products accumulated
// into s32 lanes, no intermediate saturation) on the packed layout of qgemm_kernel.h.
// Tile 12 rows x 32 columns: 24 zmm accumulators + 2 of B + 1 broadcast of A, the
// shape of the fp32 14x32 kernel (one dpbusd does 64 multiply-adds, an FMA 16).
#include <immintrin.h>

#include "cpu/quant/qgemm_kernel.h"

namespace nnf {
namespace avx512_vnni {
namespace {

template <int MR>
void tile(int64_t kg, const uint8_t* a, int64_t lda, const int8_t* panel, int32_t* c) {
  __m512i acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
  for (int64_t g = 0; g < kg; ++g) {
    const __m512i b0 = _mm512_loadu_si512(panel + g * 128);
    const __m512i b1 = _mm512_loadu_si512(panel + g * 128 + 64);
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      int32_t four;
      __builtin_memcpy(&four, a + i * lda + 4 * g, 4);
      const __m512i av = _mm512_set1_epi32(four);
      acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], av, b0);
      acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], av, b1);
    }
  }
  for (int i = 0; i < MR; ++i) {
    _mm512_storeu_si512(c + i * kQNr, acc[i][0]);
    _mm512_storeu_si512(c + i * kQNr + 16, acc[i][1]);
  }
}

using TileFn = void (*)(int64_t, const uint8_t*, int64_t, const int8_t*, int32_t*);
constexpr TileFn kTail[12] = {nullptr, tile<1>, tile<2>, tile<3>, tile<4>, tile<5>,
                              tile<6>, tile<7>, tile<8>, tile<9>, tile<10>, tile<11>};

}  // namespace

void qgemm_panel_12x32(int64_t mc, int64_t kg, const uint8_t* a, int64_t lda, const int8_t* panel, int32_t* c) {
  int64_t i = 0;
  for (; i + 12 <= mc; i += 12) tile<12>(kg, a + i * lda, lda, panel, c + i * kQNr);
  if (i < mc) kTail[mc - i](kg, a + i * lda, lda, panel, c + i * kQNr);
}

}  // namespace avx512_vnni
namespace quant {
NNF_REGISTER_PER_ISA(quant::qgemm_panel_stub, avx512_vnni::qgemm_panel_12x32);
}
}  // namespace nnf
