// Deterministic column reductions: sum_rows (Linear's bias gradient) and the
// embedding scatter-add. Threads own disjoint column ranges; every column is
// summed over rows in index order, so the thread split never changes a result.
#include <omp.h>

#include "cpu/nn/nn_isa.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace {

// Column range [lo, hi) of f for thread t of nt, in multiples of 16 floats.
inline void column_range(int64_t f, int t, int nt, int64_t& lo, int64_t& hi) {
  int64_t chunk = (f + nt - 1) / nt;
  chunk = (chunk + 15) & ~int64_t(15);
  lo = chunk * t < f ? chunk * t : f;
  hi = lo + chunk < f ? lo + chunk : f;
}

constexpr int64_t kColBlock = 256;  // columns kept in registers/L1 per pass
constexpr int64_t kRowBlock = 128;  // rows summed into a block partial first

}  // namespace

// out (f,) = [out +] sum over rows of x (rows, f). Two levels (128-row block
// partials, then their sum) keep the float error near log-depth for tall x.
void sum_rows(int64_t rows, int64_t f, const float* x, int64_t ldx, float* out, bool accumulate,
              int nt) {
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int64_t lo, hi;
    column_range(f, omp_get_thread_num(), omp_get_num_threads(), lo, hi);
    for (int64_t c0 = lo; c0 < hi; c0 += kColBlock) {
      const int64_t w = hi - c0 < kColBlock ? hi - c0 : kColBlock;
      float total[kColBlock], block[kColBlock];
      for (int64_t j = 0; j < w; ++j) total[j] = 0.0f;
      for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
        const int64_t r1 = r0 + kRowBlock < rows ? r0 + kRowBlock : rows;
        for (int64_t j = 0; j < w; ++j) block[j] = 0.0f;
        for (int64_t r = r0; r < r1; ++r) {
          const float* xr = x + r * ldx + c0;
#pragma omp simd
          for (int64_t j = 0; j < w; ++j) block[j] += xr[j];
        }
#pragma omp simd
        for (int64_t j = 0; j < w; ++j) total[j] += block[j];
      }
      float* o = out + c0;
      if (accumulate) {
#pragma omp simd
        for (int64_t j = 0; j < w; ++j) o[j] += total[j];
      } else {
#pragma omp simd
        for (int64_t j = 0; j < w; ++j) o[j] = total[j];
      }
    }
  }
}

// dw[indices[i], :] += dy[i, :] for i = 0..count-1 in order; indices validated.
// dw: (num_embeddings, d) contiguous; dy: (count, d) with row stride lddy.
void embedding_backward(int64_t count, int64_t d, const int64_t* indices, const float* dy,
                        int64_t lddy, float* dw, int nt) {
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int64_t lo, hi;
    column_range(d, omp_get_thread_num(), omp_get_num_threads(), lo, hi);
    if (lo < hi) {
      for (int64_t i = 0; i < count; ++i) {
        float* wr = dw + indices[i] * d;
        const float* gr = dy + i * lddy;
#pragma omp simd
        for (int64_t j = lo; j < hi; ++j) wr[j] += gr[j];
      }
    }
  }
}

NNF_REGISTER_PER_ISA(nn::sum_rows_stub, sum_rows);
NNF_REGISTER_PER_ISA(nn::embedding_backward_stub, embedding_backward);

}  // namespace NNF_ISA_NS
}  // namespace nnf
