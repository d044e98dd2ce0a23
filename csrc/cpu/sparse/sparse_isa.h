// The per-ISA CSR x dense kernel (csr_matmul.per_isa.cpp) and its dispatch stub
// (defined in sparse_dispatch.cpp).
#pragma once
#include <cstdint>

#include "common/dispatch.h"
#include "cpu/sparse/sparse.h"

namespace nnf {

// Rows of x per packed tile: each nonzero of W is one broadcast FMA over this many rows
// (one zmm at avx512, two ymm at avx2).
constexpr int64_t kCsrRows = 16;

// xt: scratch of ceil(M / kCsrRows) * K * kCsrRows floats (packed x^T tiles).
#define NNF_SPARSE_KERNEL_DECLS void csr_matmul(const CsrMatmul& p, float* xt, int nt);

namespace generic { NNF_SPARSE_KERNEL_DECLS }
namespace avx2 { NNF_SPARSE_KERNEL_DECLS }
namespace avx512 { NNF_SPARSE_KERNEL_DECLS }

namespace sparse {
NNF_DECLARE_DISPATCH(decltype(&generic::csr_matmul), csr_matmul_stub);
}  // namespace sparse

}  // namespace nnf
