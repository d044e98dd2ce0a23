// float32 -> bf16 with AVX512_BF16's vcvtneps2bf16 (round to nearest even). The
// instruction treats denormal inputs as zero and keeps a NaN's payload, so lanes with
// a zero exponent or a NaN take the integer rounding of bf16_scalar.h instead: the
// same bits as every other path.
// GCC 12 warns on _mm512_undefined_* inside its own intrinsics headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "cpu/gemm/bf16_convert_isa.h"
#include "cpu/gemm/bf16_scalar.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace {

void f32_to_bf16(int64_t n, const float* src, uint16_t* dst) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), exp_mask = _mm512_set1_epi32(0x7f800000);
  const __m512i zero = _mm512_setzero_si512();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 x = _mm512_loadu_ps(src + i);
    const __m512i u = _mm512_castps_si512(x);
    __m256i r = (__m256i)_mm512_cvtneps_pbh(x);
    const __mmask16 special =
        _mm512_cmpeq_epi32_mask(_mm512_and_si512(u, exp_mask), zero) |
        _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, abs_mask), exp_mask);
    if (special) {
      // Integer rounding for these lanes (rare: denormals, zeros, NaNs).
      alignas(64) uint16_t fix[16];
      _mm256_store_si256(reinterpret_cast<__m256i*>(fix), r);
      for (int l = 0; l < 16; ++l)
        if (special >> l & 1) fix[l] = bf16::from_f32(src[i + l]);
      r = _mm256_load_si256(reinterpret_cast<const __m256i*>(fix));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), r);
  }
  for (; i < n; ++i) dst[i] = bf16::from_f32(src[i]);
}

void bf16_to_f32(int64_t n, const uint16_t* src, float* dst) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    _mm512_storeu_si512(dst + i, _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  for (; i < n; ++i) dst[i] = bf16::to_f32(src[i]);
}

}  // namespace

NNF_REGISTER_PER_ISA(f32_to_bf16_stub, f32_to_bf16);
NNF_REGISTER_PER_ISA(bf16_to_f32_stub, bf16_to_f32);

}  // namespace NNF_ISA_NS
}  // namespace nnf
