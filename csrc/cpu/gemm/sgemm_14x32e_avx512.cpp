// AVX-512 micro-kernels, 14 x 32 tile plus exact-size edge tiles (contract in gemm_kernel.h).
//
// One template tile<R, NV, kRowA> computes R x (16*NV) of C, R <= 14, NV in {1, 2}:
// R*NV zmm accumulators, NV B vectors, 1 broadcast (31 of 32 registers at 14 x 32).
// The full 14 x 32 tile is the same arithmetic as avx512_14x32 (v1). What this variant
// adds is the edge tiles, picked by edge_kernel(rows, cols):
//   - rows < 14 (m % 14 remainder, or m itself when m < 14, e.g. 10 for n = 10 after the
//     C^T swap) runs an R-row kernel: no FMAs on padding rows (128 = 9*14 + 2 wasted 12
//     of 14 rows of the last panel) and A may be read in place, as only R rows are read;
//   - cols <= 16 (n % 32 remainder, e.g. 784 = 24*32 + 16) runs a one-vector kernel.
// Per element the FMA chain over k and the epilogue are unchanged, so results are
// bitwise identical to the padded tile (and to any thread count).
//
// Variants:
//   avx512_14x32   v1 (sgemm_14x32_avx512.cpp): one tile size, edges padded to 14 x 32.
//   avx512_14x32e  v2 (this file): exact-size edge tiles, A edge panels read in place.
// GCC 12 warns on _mm512_undefined_ps inside its own intrinsics headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "cpu/gemm/activation_avx512.h"
#include "cpu/gemm/gemm_kernel.h"

namespace nnf {
namespace avx512 {

namespace {
constexpr int MR = 14;

// v = alpha*acc (+ beta*c) (+ bias_row) (+ bias_col) -> activation, stored at c.
inline __attribute__((always_inline)) __m512 finish(__m512 acc, const float* c, __m512 valpha,
                                                    const gemm::TileEpilogue& ep, __m512 brow,
                                                    bool has_brow, __m512 bcol, bool has_bcol) {
  __m512 v = _mm512_mul_ps(acc, valpha);
  if (ep.beta != 0.0f) v = _mm512_fmadd_ps(_mm512_set1_ps(ep.beta), _mm512_loadu_ps(c), v);
  if (has_brow) v = _mm512_add_ps(v, brow);
  if (has_bcol) v = _mm512_add_ps(v, bcol);
  if (ep.activation != 0) v = activate_ps(v, ep.activation);
  return v;
}

// R x 16*NV tile. kRowA: A element (i, p) at a[i*lda + p] (row-major A in place), else
// at a[p*lda + i] (packed panel with lda == 14, or a column-major view in place).
template <int R, int NV, bool kRowA>
void tile(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
          int64_t ldc, const gemm::TileEpilogue& ep) {
  __m512 acc[R][NV];
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();

  for (int64_t p = 0; p < kc; ++p) {
    if (!kRowA) _mm_prefetch(reinterpret_cast<const char*>(a + 8 * lda), _MM_HINT_T0);
    __m512 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      _mm_prefetch(reinterpret_cast<const char*>(b + 8 * ldb + 16 * v), _MM_HINT_T0);
      bv[v] = _mm512_loadu_ps(b + 16 * v);
    }
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      const __m512 ai = _mm512_set1_ps(kRowA ? a[i * lda] : a[i]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
    }
    a += kRowA ? 1 : lda;
    b += ldb;
  }

  const __m512 valpha = _mm512_set1_ps(ep.alpha);
  const bool has_bcol = ep.bias_col != nullptr, has_brow = ep.bias_row != nullptr;
  __m512 bcol[NV];
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v)
    bcol[v] = has_bcol ? _mm512_loadu_ps(ep.bias_col + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i) {
    const __m512 brow = _mm512_set1_ps(has_brow ? ep.bias_row[i] : 0.0f);
    float* ci = c + i * ldc;
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v)
      _mm512_storeu_ps(ci + 16 * v, finish(acc[i][v], ci + 16 * v, valpha, ep, brow, has_brow,
                                           bcol[v], has_bcol));
  }
}

// kTable[rowa][rows][nv]: every R x 16*NV tile, R = 1..14.
template <bool kRowA, int... Rs>
struct Table {
  static constexpr gemm::MicroKernel by_rows[2][MR + 1] = {
      {nullptr, tile<Rs, 1, kRowA>...},
      {nullptr, tile<Rs, 2, kRowA>...},
  };
};
using PackedTable = Table<false, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14>;
using RowATable = Table<true, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14>;

}  // namespace

void sgemm_avx512_14x32e(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                         float* c, int64_t ldc, const gemm::TileEpilogue& ep) {
  tile<MR, 2, false>(kc, a, lda, b, ldb, c, ldc, ep);
}

void sgemm_avx512_14x32e_rowa(int64_t kc, const float* a, int64_t lda, const float* b,
                              int64_t ldb, float* c, int64_t ldc, const gemm::TileEpilogue& ep) {
  tile<MR, 2, true>(kc, a, lda, b, ldb, c, ldc, ep);
}

gemm::EdgeKernel sgemm_avx512_14x32e_edge(int rows, int cols, bool rowa) {
  const int nv = cols <= 16 ? 1 : 2;
  return {rowa ? RowATable::by_rows[nv - 1][rows] : PackedTable::by_rows[nv - 1][rows], 16 * nv};
}

// Block sizes of avx512_14x32 .. 14x32t, for Zen 4 (1 MiB L2): kc*nr*4 = 32 KiB B
// micro-panel ~ L1, mc*kc*4 = 168 KiB A block well inside L2, kc*nc*4 B block in L2/L3.
// avx512_14x32k (preference 0, "auto" on the avx512 slot): the 14x32t kernels and packs
// with kc 512, mc 112, nc 1024. A longer k loop halves the C tile loads/stores and
// epilogues per FMA, and the 2 MiB B block (kc*nc*4) of each thread shares the L3 better
// than 256 x 2048's: measured 2 threads, three alternating runs, GFLOP/s 14x32t -> 14x32k:
// 512^3 195-212 -> 208-212, 1024^3 185-205 -> 200-211, 2048^3 175-198 -> 185-209, 4096^3
// 187-194 -> 192-204; one thread at 1024-2048 unchanged (~98-102).
constexpr gemm::KernelConfig kAvx512_14x32k{
    "avx512_14x32k", Slot::avx512, 0, 14, 32, 512, 112, 1024, sgemm_avx512_14x32e,
    sgemm_avx512_14x32e_rowa, sgemm_avx512_14x32e_edge, transpose_pack_avx512_14,
    transpose_pack_avx512_32, 0.6};
constexpr gemm::KernelConfig kAvx512_14x32t{
    "avx512_14x32t", Slot::avx512, 1, 14, 32, 256, 168, 2048, sgemm_avx512_14x32e,
    sgemm_avx512_14x32e_rowa, sgemm_avx512_14x32e_edge, transpose_pack_avx512_14,
    transpose_pack_avx512_32, 0.6};
constexpr gemm::KernelConfig kAvx512_14x32e{
    "avx512_14x32e", Slot::avx512, 2, 14, 32, 256, 168, 2048, sgemm_avx512_14x32e,
    sgemm_avx512_14x32e_rowa, sgemm_avx512_14x32e_edge, nullptr, nullptr, 0.6};
NNF_REGISTER_GEMM_VARIANT(kAvx512_14x32k);
NNF_REGISTER_GEMM_VARIANT(kAvx512_14x32t);
NNF_REGISTER_GEMM_VARIANT(kAvx512_14x32e);

}  // namespace avx512
}  // namespace nnf
