// AVX-512 micro-kernel, 14 x 32 tile (see gemm_kernel.h for the contract).
//
// Registers: 28 zmm accumulators (14 rows x 2 vectors of 16 columns), 2 for the B row,
// 1 for the broadcast A element = 31 of 32. On Zen 4 a zmm FMA issues as 2 x 256 on
// the two FMA pipes (1 zmm FMA/cycle, latency 4), so 28 independent chains hide the
// latency with room to spare, and per k step 28 FMAs need only 2 B loads + 14
// broadcasts, well under the 2-3 loads/cycle the core can do.
//
// Variants:
//   avx512_14x32  v1: plain intrinsics, compiler-unrolled rows, prefetch of A/B ahead.
// GCC 12 warns on _mm512_undefined_ps inside its own intrinsics headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "cpu/gemm/activation_avx512.h"
#include "cpu/gemm/gemm_kernel.h"

namespace nnf {
namespace avx512 {

namespace {
constexpr int MR = 14;

// Stores row i of the tile: v = alpha*acc (+ beta*c) (+ bias) -> activation.
inline void store_row(float* c, __m512 acc0, __m512 acc1, __m512 valpha, const gemm::TileEpilogue& ep,
                      float brow, bool has_brow, __m512 bc0, __m512 bc1, bool has_bcol) {
  __m512 v0 = _mm512_mul_ps(acc0, valpha), v1 = _mm512_mul_ps(acc1, valpha);
  if (ep.beta != 0.0f) {
    const __m512 vb = _mm512_set1_ps(ep.beta);
    v0 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(c), v0);
    v1 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(c + 16), v1);
  }
  if (has_brow) {
    v0 = _mm512_add_ps(v0, _mm512_set1_ps(brow));
    v1 = _mm512_add_ps(v1, _mm512_set1_ps(brow));
  }
  if (has_bcol) {
    v0 = _mm512_add_ps(v0, bc0);
    v1 = _mm512_add_ps(v1, bc1);
  }
  if (ep.activation != 0) {
    v0 = activate_ps(v0, ep.activation);
    v1 = activate_ps(v1, ep.activation);
  }
  _mm512_storeu_ps(c, v0);
  _mm512_storeu_ps(c + 16, v1);
}

// kRowA: A element (i, p) at a[i*lda + p] (row-major A read in place), else at
// a[p*lda + i] (packed micro-panel with lda == MR, or a transposed view).
template <bool kRowA>
inline __attribute__((always_inline)) void tile(int64_t kc, const float* a, int64_t lda,
                                                const float* b, int64_t ldb, float* c, int64_t ldc,
                                                const gemm::TileEpilogue& ep) {
  __m512 acc[MR][2];
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();

  for (int64_t p = 0; p < kc; ++p) {
    if (!kRowA) _mm_prefetch(reinterpret_cast<const char*>(a + 8 * lda), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * ldb), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * ldb + 16), _MM_HINT_T0);
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(kRowA ? a[i * lda] : a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += kRowA ? 1 : lda;
    b += ldb;
  }

  const __m512 valpha = _mm512_set1_ps(ep.alpha);
  const bool has_bcol = ep.bias_col != nullptr, has_brow = ep.bias_row != nullptr;
  const __m512 bc0 = has_bcol ? _mm512_loadu_ps(ep.bias_col) : _mm512_setzero_ps();
  const __m512 bc1 = has_bcol ? _mm512_loadu_ps(ep.bias_col + 16) : _mm512_setzero_ps();
#pragma GCC unroll 14
  for (int i = 0; i < MR; ++i)
    store_row(c + i * ldc, acc[i][0], acc[i][1], valpha, ep, has_brow ? ep.bias_row[i] : 0.0f,
              has_brow, bc0, bc1, has_bcol);
}

}  // namespace

void sgemm_avx512_14x32(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                        float* c, int64_t ldc, const gemm::TileEpilogue& ep) {
  tile<false>(kc, a, lda, b, ldb, c, ldc, ep);
}

void sgemm_avx512_14x32_rowa(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                             float* c, int64_t ldc, const gemm::TileEpilogue& ep) {
  tile<true>(kc, a, lda, b, ldb, c, ldc, ep);
}

// Block sizes: see sgemm_14x32e_avx512.cpp (shared by the avx512_14x32 variants).
constexpr gemm::KernelConfig kAvx512_14x32{"avx512_14x32", Slot::avx512, 3, 14, 32, 256, 168,
                                           2048, sgemm_avx512_14x32, sgemm_avx512_14x32_rowa,
                                           nullptr, nullptr, nullptr, 0.6};
NNF_REGISTER_GEMM_VARIANT(kAvx512_14x32);

}  // namespace avx512
}  // namespace nnf
