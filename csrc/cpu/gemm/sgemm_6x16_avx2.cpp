// AVX2+FMA micro-kernels, 6 x 16 tile (see gemm_kernel.h for the contract).
//
// Registers: 12 ymm accumulators (6 rows x 2 vectors of 8 columns), 2 for the B row,
// 1 broadcast = 15 of 16 (the classic Haswell shape, cf. BLIS bli_sgemm_haswell_asm_6x16).
// In L1 the loop runs at ~95% of the FMA peak on Zen 3 (12 FMAs + 8 loads per k step).
//
// Variants:
//   avx2_6x16   v1: plain intrinsics, compiler-unrolled rows, prefetch of A/B ahead.
//   avx2_6x16p  v2: v1 + prefetch of the 6 C rows before the k loop. At 1024-2048 each
//               tile's C rows (8 KiB apart, 16 MiB in all) miss to L3/DRAM once per
//               k-block; without the prefetch the epilogue stalls on ~12 misses per
//               1500-cycle tile (frame-shaped loop at 2048, 1 thread: ~79 -> ~85 GF/s).
//               The variant also selects the AVX2 transposing packs (gemm_pack_avx2.cpp).
//               Same per-element arithmetic as v1 (bitwise equal results).
#include <immintrin.h>

#include "cpu/gemm/activation_avx2.h"
#include "cpu/gemm/gemm_kernel.h"

namespace nnf {
namespace avx2 {

namespace {
constexpr int MR = 6;

// Stores row i of the tile: v = alpha*acc (+ beta*c) (+ bias) -> activation.
inline void store_row(float* c, __m256 acc0, __m256 acc1, __m256 valpha, const gemm::TileEpilogue& ep,
                      float brow, bool has_brow, __m256 bc0, __m256 bc1, bool has_bcol) {
  __m256 v0 = _mm256_mul_ps(acc0, valpha), v1 = _mm256_mul_ps(acc1, valpha);
  if (ep.beta != 0.0f) {
    const __m256 vb = _mm256_set1_ps(ep.beta);
    v0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c), v0);
    v1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + 8), v1);
  }
  if (has_brow) {
    v0 = _mm256_add_ps(v0, _mm256_set1_ps(brow));
    v1 = _mm256_add_ps(v1, _mm256_set1_ps(brow));
  }
  if (has_bcol) {
    v0 = _mm256_add_ps(v0, bc0);
    v1 = _mm256_add_ps(v1, bc1);
  }
  if (ep.activation != 0) {
    v0 = activate_ps(v0, ep.activation);
    v1 = activate_ps(v1, ep.activation);
  }
  _mm256_storeu_ps(c, v0);
  _mm256_storeu_ps(c + 8, v1);
}

// kRowA: A element (i, p) at a[i*lda + p] (row-major A read in place), else at
// a[p*lda + i] (packed micro-panel with lda == MR, or a transposed view).
// kPrefetchC: v2 (see the header).
template <bool kRowA, bool kPrefetchC>
inline __attribute__((always_inline)) void tile(int64_t kc, const float* a, int64_t lda,
                                                const float* b, int64_t ldb, float* c, int64_t ldc,
                                                const gemm::TileEpilogue& ep) {
  __m256 acc[MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();

  if (kPrefetchC) {
    // A 16-float row spans two lines unless C is 64-byte aligned.
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 15), _MM_HINT_T0);
    }
  }

  for (int64_t p = 0; p < kc; ++p) {
    if (!kRowA) _mm_prefetch(reinterpret_cast<const char*>(a + 8 * lda), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * ldb), _MM_HINT_T0);
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_set1_ps(kRowA ? a[i * lda] : a[i]);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += kRowA ? 1 : lda;
    b += ldb;
  }

  const __m256 valpha = _mm256_set1_ps(ep.alpha);
  const bool has_bcol = ep.bias_col != nullptr, has_brow = ep.bias_row != nullptr;
  const __m256 bc0 = has_bcol ? _mm256_loadu_ps(ep.bias_col) : _mm256_setzero_ps();
  const __m256 bc1 = has_bcol ? _mm256_loadu_ps(ep.bias_col + 8) : _mm256_setzero_ps();
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i)
    store_row(c + i * ldc, acc[i][0], acc[i][1], valpha, ep, has_brow ? ep.bias_row[i] : 0.0f,
              has_brow, bc0, bc1, has_bcol);
}

}  // namespace

void sgemm_avx2_6x16(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                     float* c, int64_t ldc, const gemm::TileEpilogue& ep) {
  tile<false, false>(kc, a, lda, b, ldb, c, ldc, ep);
}

void sgemm_avx2_6x16_rowa(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                          float* c, int64_t ldc, const gemm::TileEpilogue& ep) {
  tile<true, false>(kc, a, lda, b, ldb, c, ldc, ep);
}

void sgemm_avx2_6x16p(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                      float* c, int64_t ldc, const gemm::TileEpilogue& ep) {
  tile<false, true>(kc, a, lda, b, ldb, c, ldc, ep);
}

void sgemm_avx2_6x16p_rowa(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                           float* c, int64_t ldc, const gemm::TileEpilogue& ep) {
  tile<true, true>(kc, a, lda, b, ldb, c, ldc, ep);
}

// Block sizes: see sgemm_6x16e_avx2.cpp (shared by the avx2_6x16 variants).
constexpr gemm::KernelConfig kAvx2_6x16p{"avx2_6x16p", Slot::avx2, 1, 6, 16, 256, 144, 2048,
                                         sgemm_avx2_6x16p, sgemm_avx2_6x16p_rowa, nullptr,
                                         transpose_pack_avx2_6, transpose_pack_avx2_16, 0.6};
constexpr gemm::KernelConfig kAvx2_6x16{"avx2_6x16", Slot::avx2, 2, 6, 16, 256, 144, 2048,
                                        sgemm_avx2_6x16, sgemm_avx2_6x16_rowa, nullptr, nullptr,
                                        nullptr, 0.6};
NNF_REGISTER_GEMM_VARIANT(kAvx2_6x16p);
NNF_REGISTER_GEMM_VARIANT(kAvx2_6x16);

}  // namespace avx2
}  // namespace nnf
