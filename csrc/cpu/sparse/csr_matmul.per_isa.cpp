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
// Variants:
//   v1 (this file): packed x^T tiles of 16 rows, 16x16 output tile transposed on store.
#include <omp.h>

#include <cstring>

#include "cpu/sparse/sparse_isa.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace {

constexpr int64_t R = kCsrRows;

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
    alignas(64) float acc[R];
    const float b0 = p.bias ? p.bias[n] : 0.0f;
    for (int64_t r = 0; r < R; ++r) acc[r] = b0;
    for (int64_t q = p.indptr[n]; q < p.indptr[n + 1]; ++q) {
      const float v = p.values[q];
      const float* col = tile + int64_t(p.indices[q]) * R;
      for (int64_t r = 0; r < R; ++r) acc[r] += v * col[r];
    }
    if (p.relu)  // written so that NaN stays NaN (relu(NaN) = NaN, the project's rule)
      for (int64_t r = 0; r < R; ++r) acc[r] = acc[r] < 0.0f ? 0.0f : acc[r];
    std::memcpy(out[j], acc, sizeof acc);
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
