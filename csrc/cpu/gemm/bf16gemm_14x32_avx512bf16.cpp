// AVX512_BF16 micro-kernel, 14 x 32 tile (contract in bf16_kernel.h).
//
// Per k pair: 2 B vectors (32 columns x 2 bf16), 14 broadcasts of an A pair as one
// 32-bit value, 28 vdpbf16ps into 28 zmm accumulators (31 of 32 registers, as the
// float32 14 x 32 kernel). Each vdpbf16ps does two k steps, hence ~2x the float32 rate.
// vdpbf16ps flushes denormal inputs and results to zero (Intel SDM): products below
// ~1e-38 are lost, as on every bf16 matrix unit.
//
// Variants:
//   avx512bf16_14x32   v1 (this file).
#include <immintrin.h>

#include "cpu/gemm/bf16_kernel.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace {

constexpr int MR = 14, NR = 32;

void bf16gemm_avx512bf16_14x32(int64_t kp, const uint32_t* a, const uint32_t* b, float* c,
                               int64_t ldc, bool accumulate) {
  __m512 acc0[MR], acc1[MR];
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) {
    acc0[i] = accumulate ? _mm512_loadu_ps(c + i * ldc) : _mm512_setzero_ps();
    acc1[i] = accumulate ? _mm512_loadu_ps(c + i * ldc + 16) : _mm512_setzero_ps();
  }
  for (int64_t q = 0; q < kp; ++q) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + q * NR);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + q * NR + 16);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(int(a[q * MR + i]));
      acc0[i] = _mm512_dpbf16_ps(acc0[i], av, b0);
      acc1[i] = _mm512_dpbf16_ps(acc1[i], av, b1);
    }
  }
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) {
    _mm512_storeu_ps(c + i * ldc, acc0[i]);
    _mm512_storeu_ps(c + i * ldc + 16, acc1[i]);
  }
}

// Variants (same kernel, other blocking):
//   avx512bf16_14x32k  v2 (preference 0): kc 1024, mc 84, nc 1024. Each float32 C tile is
//       loaded and stored once per 512 vdpbf16ps steps instead of 192, and the A block
//       (84 x 1024 bf16, 168 KiB) still sits in L2; the B micro-panel (64 KiB) streams
//       from L2. Measured on Zen 4, 2 threads, two alternating runs, GFLOP/s v1 -> v2:
//       512^3 282-333 -> 280-356, 1024^3 265-292 -> 302-321, 2048^3 185-288 -> 361-374;
//       one thread 1024^3 / 2048^3 162 / 167 -> 183 / 191.
//   avx512bf16_14x32   v1: kc 384 (a B micro-panel of 192 pairs x 32 is 24 KiB, L1), mc
//       168 (A block 126 KiB, L2), nc 1536 (B block 1.1 MiB, L2/L3).
constexpr gemm::Bf16KernelConfig kAvx512bf16_14x32k{
    "avx512bf16_14x32k", Slot::avx512_bf16, 0, MR, NR, 1024, 84, 1024, bf16gemm_avx512bf16_14x32};
constexpr gemm::Bf16KernelConfig kAvx512bf16_14x32{
    "avx512bf16_14x32", Slot::avx512_bf16, 1, MR, NR, 384, 168, 1536, bf16gemm_avx512bf16_14x32};
NNF_REGISTER_BF16_GEMM_VARIANT(kAvx512bf16_14x32k);
NNF_REGISTER_BF16_GEMM_VARIANT(kAvx512bf16_14x32);

}  // namespace
}  // namespace NNF_ISA_NS
}  // namespace nnf
