// Portable micro-kernel, 4 x 8 tile, plain C++ (see gemm_kernel.h for the contract).
// Always built; the compiler vectorises the 8-wide row with whatever the baseline
// target offers (SSE2 on x86-64); mul + add, not std::fma, which is a slow libm call
// on a baseline target. Also the reference the SIMD kernels are tested against.
//
// Variants:
//   generic_4x8  v1: plain loops.
#include "cpu/gemm/activation_scalar.h"
#include "cpu/gemm/gemm_kernel.h"

namespace nnf {
namespace generic {

namespace {

// kRowA: A element (i, p) at a[i*lda + p], else at a[p*lda + i] (packed: lda == MR).
template <bool kRowA>
inline void tile(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                 int64_t ldc, const gemm::TileEpilogue& ep) {
  constexpr int MR = 4, NR = 8;
  float acc[MR][NR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += (kRowA ? a[i * lda] : a[i]) * b[j];
    a += kRowA ? 1 : lda;
    b += ldb;
  }
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    for (int j = 0; j < NR; ++j) {
      float v = ep.alpha * acc[i][j];
      if (ep.beta != 0.0f) v += ep.beta * ci[j];
      if (ep.bias_row) v += ep.bias_row[i];
      if (ep.bias_col) v += ep.bias_col[j];
      ci[j] = gemm::activate_scalar(v, ep.activation);
    }
  }
}

}  // namespace

void sgemm_generic_4x8(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                       float* c, int64_t ldc, const gemm::TileEpilogue& ep) {
  tile<false>(kc, a, lda, b, ldb, c, ldc, ep);
}

void sgemm_generic_4x8_rowa(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                            float* c, int64_t ldc, const gemm::TileEpilogue& ep) {
  tile<true>(kc, a, lda, b, ldb, c, ldc, ep);
}

// Always built: the variant every other slot falls back to.
constexpr gemm::KernelConfig kGeneric4x8{"generic_4x8", Slot::generic, 0, 4, 8, 256, 128, 1024,
                                         sgemm_generic_4x8, sgemm_generic_4x8_rowa, nullptr,
                                         nullptr, nullptr, 0.6};
NNF_REGISTER_GEMM_VARIANT(kGeneric4x8);

}  // namespace generic
}  // namespace nnf
