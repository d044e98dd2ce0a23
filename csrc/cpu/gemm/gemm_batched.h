// Batched float32 GEMM: C[i] = alpha * A[i] @ B[i] + beta * C[i] (+ bias, activation)
// for i < batch, where X[i] starts at x.data + i * x_batch_stride (stride 0 broadcasts
// one matrix over the batch, as numpy.matmul does).
#pragma once
#include <cstdint>

#include "cpu/gemm/gemm.h"

namespace nnf {

// When one GEMM is too small to use every thread, threads take whole batch entries
// (each runs single-threaded); otherwise entries run in order, each multi-threaded.
// Both give the same bits, since a GEMM's result does not depend on its thread count.
void sgemm_batched(int64_t batch, int64_t m, int64_t n, int64_t k, float alpha, MatRef a,
                   int64_t a_batch_stride, MatRef b, int64_t b_batch_stride, float beta,
                   MutMatRef c, int64_t c_batch_stride, const GemmEpilogue& ep = GemmEpilogue{},
                   int nthreads = 0);

}  // namespace nnf
