// AVX2+FMA micro-kernels, 6 x 16 tile plus exact-size edge tiles (contract in gemm_kernel.h).
//
// One template tile<R, NV, kRowA> computes R x (8*NV) of C, R <= 6, NV in {1, 2}:
// R*NV ymm accumulators, NV B vectors, 1 broadcast. The full 6 x 16 tile is the arithmetic
// of avx2_6x16p (C rows prefetched before the k loop). What this variant adds is the edge
// tiles, picked by edge_kernel(rows, cols):
//   - rows < 6 (m % 6 remainder: 128 = 21*6 + 2, or m itself after the C^T swap, e.g. 10 =
//     6 + 4 for n = 10) runs an R-row kernel: no FMAs on padding rows, and A edge panels
//     are read in place, as only R rows are read;
//   - cols <= 8 runs a one-vector kernel (16-wide B edge panels of 8 columns in place).
// The epilogue also takes the fields of TileEpilogue by value and has branch-free paths
// for C = alpha*AB and C = alpha*AB + beta*C, which matter when k is small (fc3 dX,
// k = 10: 6x16p ~49 -> ~55 GF/s).
// Per element the FMA chain over k and the epilogue are unchanged, so results are
// bitwise identical to the padded tile (and to any thread count).
//
// Variants (gemm_variants.h):
//   avx2_6x16   v1 (sgemm_6x16_avx2.cpp)
//   avx2_6x16p  v2 (sgemm_6x16_avx2.cpp): C prefetch, AVX2 transposing packs.
//   avx2_6x16e  v3 (this file): v2 + exact-size edge tiles, A edge panels in place, and
//               the C^T orientation taken whenever it pads 25% less (fc3 128x128x10
//               dW = x.T @ dy: 12 -> 10 rows of 128 columns instead of 132 -> 128 rows
//               of 16 columns for 10, ~40 -> ~57 GF/s on one thread).
#include <immintrin.h>

#include "cpu/gemm/activation_avx2.h"
#include "cpu/gemm/gemm_kernel.h"

namespace nnf {
namespace avx2 {

namespace {
constexpr int MR = 6;

// v = alpha*acc (+ beta*c) (+ bias_row) (+ bias_col) -> activation, in the order of v1.
// The epilogue fields come by value: read through `ep` they would be reloaded and
// re-tested after every store to C (C may alias them as far as the compiler knows),
// ~20% of a k = 10 tile.
inline __attribute__((always_inline)) __m256 finish(__m256 acc, const float* c, __m256 valpha,
                                                    float beta, int act, __m256 brow,
                                                    bool has_brow, __m256 bcol, bool has_bcol) {
  __m256 v = _mm256_mul_ps(acc, valpha);
  if (beta != 0.0f) v = _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_loadu_ps(c), v);
  if (has_brow) v = _mm256_add_ps(v, brow);
  if (has_bcol) v = _mm256_add_ps(v, bcol);
  if (act != 0) v = activate_ps(v, act);
  return v;
}

// R x 8*NV tile. kRowA: A element (i, p) at a[i*lda + p] (row-major A in place), else
// at a[p*lda + i] (packed panel with lda == 6, or a column-major view in place).
template <int R, int NV, bool kRowA>
void tile(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
          int64_t ldc, const gemm::TileEpilogue& ep) {
  __m256 acc[R][NV];
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();

  // C rows are read and written after the loop; fetch them now so the misses overlap
  // the FMAs (a row of 8*NV floats spans two lines unless C is 64-byte aligned).
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 8 * NV - 1), _MM_HINT_T0);
  }

  for (int64_t p = 0; p < kc; ++p) {
    if (!kRowA) _mm_prefetch(reinterpret_cast<const char*>(a + 8 * lda), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * ldb), _MM_HINT_T0);
    __m256 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) bv[v] = _mm256_loadu_ps(b + 8 * v);
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      const __m256 ai = _mm256_set1_ps(kRowA ? a[i * lda] : a[i]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a += kRowA ? 1 : lda;
    b += ldb;
  }

  const __m256 valpha = _mm256_set1_ps(ep.alpha);
  const float beta = ep.beta;
  const int act = ep.activation;
  const float* bias_row = ep.bias_row;
  const bool has_bcol = ep.bias_col != nullptr, has_brow = bias_row != nullptr;
  // The two common epilogues without per-row branches (each costs ~20% of a k = 10
  // tile): plain C = alpha*AB, and C = alpha*AB + beta*C (every k-block after the first).
  if (!has_brow && !has_bcol && act == 0) {
    if (beta == 0.0f) {
#pragma GCC unroll 6
      for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v)
          _mm256_storeu_ps(c + i * ldc + 8 * v, _mm256_mul_ps(acc[i][v], valpha));
    } else {
      const __m256 vbeta = _mm256_set1_ps(beta);
#pragma GCC unroll 6
      for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) {
          float* cv = c + i * ldc + 8 * v;
          const __m256 v0 = _mm256_mul_ps(acc[i][v], valpha);
          _mm256_storeu_ps(cv, _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(cv), v0));
        }
    }
    return;
  }
  __m256 bcol[NV];
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v)
    bcol[v] = has_bcol ? _mm256_loadu_ps(ep.bias_col + 8 * v) : _mm256_setzero_ps();
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) {
    const __m256 brow = _mm256_set1_ps(has_brow ? bias_row[i] : 0.0f);
    float* ci = c + i * ldc;
    __m256 out[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v)
      out[v] = finish(acc[i][v], ci + 8 * v, valpha, beta, act, brow, has_brow, bcol[v], has_bcol);
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) _mm256_storeu_ps(ci + 8 * v, out[v]);
  }
}

// by_rows[nv - 1][rows]: every R x 8*NV tile, R = 1..6.
template <bool kRowA, int... Rs>
struct Table {
  static constexpr gemm::MicroKernel by_rows[2][MR + 1] = {
      {nullptr, tile<Rs, 1, kRowA>...},
      {nullptr, tile<Rs, 2, kRowA>...},
  };
};
using PackedTable = Table<false, 1, 2, 3, 4, 5, 6>;
using RowATable = Table<true, 1, 2, 3, 4, 5, 6>;

}  // namespace

void sgemm_avx2_6x16e(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                      float* c, int64_t ldc, const gemm::TileEpilogue& ep) {
  tile<MR, 2, false>(kc, a, lda, b, ldb, c, ldc, ep);
}

void sgemm_avx2_6x16e_rowa(int64_t kc, const float* a, int64_t lda, const float* b,
                           int64_t ldb, float* c, int64_t ldc, const gemm::TileEpilogue& ep) {
  tile<MR, 2, true>(kc, a, lda, b, ldb, c, ldc, ep);
}

gemm::EdgeKernel sgemm_avx2_6x16e_edge(int rows, int cols, bool rowa) {
  const int nv = cols <= 8 ? 1 : 2;
  return {rowa ? RowATable::by_rows[nv - 1][rows] : PackedTable::by_rows[nv - 1][rows], 8 * nv};
}

// Block sizes (all avx2_6x16 variants), BLIS's Zen 3 values (512 KiB L2): kc*nr*4 =
// 16 KiB B micro-panel in L1, mc*kc*4 = 144 KiB A block in L2, kc*nc*4 B block in
// L2/L3. KC 384 / 512 measured no faster at 1024-2048 (the 24-32 KiB B panel no
// longer stays in L1) and MC 72..192 within noise, once C is prefetched (avx2_6x16p).
// Preference 0: "auto" on the avx2 slot.
constexpr gemm::KernelConfig kAvx2_6x16e{"avx2_6x16e", Slot::avx2, 0, 6, 16, 256, 144, 2048,
                                         sgemm_avx2_6x16e, sgemm_avx2_6x16e_rowa,
                                         sgemm_avx2_6x16e_edge, transpose_pack_avx2_6,
                                         transpose_pack_avx2_16, 0.75};
NNF_REGISTER_GEMM_VARIANT(kAvx2_6x16e);

}  // namespace avx2
}  // namespace nnf
