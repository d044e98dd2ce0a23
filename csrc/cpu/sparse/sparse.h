// Sparse x dense products for pruned layers: y (M, N) = act(x (M, K) @ W^T + b) with W
// (N, K) held as CSR (row n of W = output feature n). Entry points (sparse_dispatch.cpp)
// validate the CSR structure before anything is written, pick the thread count and call
// the per-ISA kernel (sparse_isa.h) once.
#pragma once
#include <cstdint>

namespace nnf {

// One product. x may be any strided view (element strides); y is C-contiguous (M, N).
struct CsrMatmul {
  int64_t m, k, n;
  const float* x;
  int64_t x_row_stride, x_col_stride;
  const int64_t* indptr;  // (N + 1,), indptr[0] = 0, non-decreasing, indptr[N] = nnz
  const int32_t* indices; // (nnz,), each in [0, K)
  const float* values;    // (nnz,)
  const float* bias;      // (N,) or nullptr
  bool relu;
  float* y;
};

namespace sparse {
// Throws std::invalid_argument naming the first bad entry of indptr / indices.
void check_csr(int64_t n, int64_t k, int64_t nnz, const int64_t* indptr, const int32_t* indices);
// The product (after check_csr); bitwise identical for any thread count.
void csr_matmul(const CsrMatmul& p);
}  // namespace sparse

}  // namespace nnf
