// Portable glue for the sparse kernels: CSR validation, the dispatch stub, the thread
// count and the packed-x scratch.
#include <stdexcept>
#include <string>

#include "common/aligned_buffer.h"
#include "common/checks.h"
#include "common/threads.h"
#include "cpu/sparse/sparse_isa.h"

namespace nnf {
namespace sparse {

NNF_DEFINE_DISPATCH("sparse", csr_matmul_stub);

void check_csr(int64_t n, int64_t k, int64_t nnz, const int64_t* indptr, const int32_t* indices) {
  if (indptr[0] != 0)
    throw std::invalid_argument("CSR indptr[0] must be 0, got " + std::to_string(indptr[0]));
  if (indptr[n] != nnz)
    throw std::invalid_argument("CSR indptr[-1] must equal the number of nonzeros (" + std::to_string(nnz) +
                                "), got " + std::to_string(indptr[n]));
  for (int64_t i = 0; i < n; ++i)
    if (indptr[i + 1] < indptr[i])
      throw std::invalid_argument("CSR indptr must be non-decreasing: indptr[" + std::to_string(i + 1) + "] = " +
                                  std::to_string(indptr[i + 1]) + " < indptr[" + std::to_string(i) + "] = " +
                                  std::to_string(indptr[i]));
  for (int64_t q = 0; q < nnz; ++q)
    if (indices[q] < 0 || indices[q] >= k)
      throw std::invalid_argument("CSR indices[" + std::to_string(q) + "] = " + std::to_string(indices[q]) +
                                  " is out of range [0, " + std::to_string(k) + ")");
}

void csr_matmul(const CsrMatmul& p) {
  if (p.m == 0 || p.n == 0) return;
  const int64_t tiles = (p.m + kCsrRows - 1) / kCsrRows;
  const int64_t packed = checked_mul(checked_mul(tiles, p.k, "sparse_matmul packed x"), kCsrRows,
                                     "sparse_matmul packed x");
  float* xt = thread_scratch(0).floats(size_t(packed > 0 ? packed : 1));
  const int64_t nnz = p.indptr[p.n];
  const int nt = threads_for(2.0 * double(p.m) * double(nnz) + double(p.m) * double(p.k + p.n));
  csr_matmul_stub.get()(p, xt, nt);
}

}  // namespace sparse
}  // namespace nnf
