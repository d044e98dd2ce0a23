// Batch loop over nnf::sgemm (see gemm_batched.h).
#include "cpu/gemm/gemm_batched.h"

#include <algorithm>
#include <exception>

#include "common/threads.h"

namespace nnf {

void sgemm_batched(int64_t batch, int64_t m, int64_t n, int64_t k, float alpha, MatRef a,
                   int64_t a_batch_stride, MatRef b, int64_t b_batch_stride, float beta,
                   MutMatRef c, int64_t c_batch_stride, const GemmEpilogue& ep, int nthreads) {
  if (batch <= 0 || m == 0 || n == 0) return;
  const double flops = 2.0 * double(m) * double(n) * double(std::max<int64_t>(k, 1));
  const int max_t = nthreads > 0 ? nthreads : threads_for(flops * double(batch), 1.0e6);
  const int per_gemm = nthreads > 0 ? nthreads : sgemm_threads_for(flops);
  auto one = [&](int64_t i, int nt) {
    MatRef ai{a.data + i * a_batch_stride, a.rs, a.cs};
    MatRef bi{b.data + i * b_batch_stride, b.rs, b.cs};
    MutMatRef ci{c.data + i * c_batch_stride, c.rs, c.cs};
    sgemm(m, n, k, alpha, ai, bi, beta, ci, ep, nt);
  };
  if (max_t > 1 && per_gemm < max_t && batch >= 2) {
    const int nt = int(std::min<int64_t>(max_t, batch));
    // An exception must not escape an OpenMP region (std::terminate); carry it out.
    std::exception_ptr error;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < batch; ++i) {
      try {
        one(i, 1);
      } catch (...) {
#pragma omp critical(nnf_gemm_batched_error)
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
  } else {
    for (int64_t i = 0; i < batch; ++i) one(i, per_gemm);
  }
}

}  // namespace nnf
