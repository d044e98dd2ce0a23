// CSR x dense, compiled once per ISA (generic / avx2 / avx512 namespaces).
//
// y (M, N) = act(x (M, K) @ W^T + b), W (N, K) in CSR. x is packed once into row tiles
// transposed, xt[b][k][r] = x[b * 16 + r, k] (zero past row M), so every nonzero w[n, k]
// is one broadcast multiply-add over the 16 contiguous floats xt[b][k][:] -- the inner
// loop the compiler turns into one zmm FMA (two ymm at avx2). At 80-95% sparsity a 784-
// or 1024-long row of W has 40-200 nonzeros, and a tile of x^T (K * 64 bytes) stays in
// L2 while all N outputs of that row tile are computed.
//
// Work: tasks (row tile b, 16 consecutive outputs) in one fixed order, split statically
// between threads. Each output is summed by one task in nonzero order whatever the split,
// so results are bitwise identical for any thread count.
//
// Each output's nonzeros are summed in four interleaved partial sums (q mod 4), added
// pairwise at the end: a fixed order, independent of threads.
//
// Variants:
//   v1: one running sum per output (latency-bound: ~4 GFLOP/s per core on nonzeros).
//   v2 (this file): packed x^T tiles of 16 rows, four partial sums, 16x16 output tile
//       transposed on store.
// Lanes helpers are internal (inlined): the vector-return ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
#include <omp.h>

#include <cstring>

#include "cpu/sparse/sparse_isa.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace {

constexpr int64_t R = kCsrRows;
constexpr int kChains = 4;  // partial sums per output (tile_outputs)

// The R floats of one packed x^T row as one value of a GCC vector type.
typedef float Lanes __attribute__((vector_size(R * sizeof(float))));
inline Lanes load_lanes(const float* src) {
  Lanes v;
  std::memcpy(&v, src, sizeof v);
  return v;
}
inline void store_lanes(float* dst, Lanes v) { std::memcpy(dst, &v, sizeof v); }

// xt tile b (K * R floats) from rows [b * R, b * R + R) of x.
void pack_tile(const CsrMatmul& p, int64_t b, float* tile) {
  const int64_t r0 = b * R, rows = p.m - r0 < R ? p.m - r0 : R;
  for (int64_t k = 0; k < p.k; ++k) {
    float* dst = tile + k * R;
    const float* src = p.x + r0 * p.x_row_stride + k * p.x_col_stride;
    for (int64_t r = 0; r < rows; ++r) dst[r] = src[r * p.x_row_stride];
    for (int64_t r = rows; r < R; ++r) dst[r] = 0.0f;
  }
}

// Outputs [n0, n0 + cols) of row tile b.
void tile_outputs(const CsrMatmul& p, const float* tile, int64_t b, int64_t n0, int64_t cols) {
  alignas(64) float out[R][R];  // out[j][r]: output n0 + j of row b * R + r
  for (int64_t j = 0; j < cols; ++j) {
    const int64_t n = n0 + j;
    // Four partial sums (nonzero q goes to sum q mod 4): four independent FMA chains
    // instead of one, which waited on the FMA latency at every nonzero. GCC vector
    // types keep each sum in one register (zmm / 2 ymm / 4 xmm per ISA).
    const float b0 = p.bias ? p.bias[n] : 0.0f;
    Lanes acc[kChains] = {Lanes{} + b0, Lanes{}, Lanes{}, Lanes{}};
    const int64_t q0 = p.indptr[n], q1 = p.indptr[n + 1];
    int64_t q = q0;
    for (; q + kChains <= q1; q += kChains)
      for (int c = 0; c < kChains; ++c) acc[c] += p.values[q + c] * load_lanes(tile + int64_t(p.indices[q + c]) * R);
    for (int c = 0; q < q1; ++q, ++c) acc[c] += p.values[q] * load_lanes(tile + int64_t(p.indices[q]) * R);
    alignas(64) float sum[R];
    store_lanes(sum, (acc[0] + acc[1]) + (acc[2] + acc[3]));
    if (p.relu)  // written so that NaN stays NaN (relu(NaN) = NaN, the project's rule)
      for (int64_t r = 0; r < R; ++r) sum[r] = sum[r] < 0.0f ? 0.0f : sum[r];
    std::memcpy(out[j], sum, sizeof sum);
  }
  const int64_t r0 = b * R, rows = p.m - r0 < R ? p.m - r0 : R;
  for (int64_t r = 0; r < rows; ++r) {
    float* yr = p.y + (r0 + r) * p.n + n0;
    for (int64_t j = 0; j < cols; ++j) yr[j] = out[j][r];
  }
}

}  // namespace

void csr_matmul(const CsrMatmul& p, float* xt, int nt) {
  const int64_t tiles = (p.m + R - 1) / R, chunks = (p.n + R - 1) / R;
#pragma omp parallel num_threads(nt)
  {
#pragma omp for schedule(static)
    for (int64_t b = 0; b < tiles; ++b) pack_tile(p, b, xt + b * p.k * R);
    // (the implicit barrier: every tile is packed before any is read)
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles * chunks; ++t) {
      const int64_t b = t / chunks, n0 = (t % chunks) * R;
      tile_outputs(p, xt + b * p.k * R, b, n0, p.n - n0 < R ? p.n - n0 : R);
    }
  }
}

NNF_REGISTER_PER_ISA(sparse::csr_matmul_stub, csr_matmul);

}  // namespace NNF_ISA_NS
}  // namespace nnf
