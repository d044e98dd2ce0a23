// Internal float32 GEMM interface used by matmul, Linear, and convolution.
//
//   C (m x n) = alpha * A (m x k) @ B (k x n) + beta * C, then + bias, then activation
//
// Every operand is addressed by element strides (row stride rs, column stride cs),
// so transposed and sliced NumPy views need no copy. Strides may be negative.
// When beta == 0, C is not read (NaNs in an uninitialised C do not propagate).
// The reduction order over k is fixed, so results are bitwise identical for any
// thread count.
#pragma once
#include <cstdint>

namespace nnf {

enum class Activation : int { none = 0, relu = 1, gelu_tanh = 2, gelu_erf = 3 };

enum class BiasMode : int {
  none = 0,
  per_column = 1,  // bias[j] added to C[i][j]  (Linear: one bias per output feature)
  per_row = 2,     // bias[i] added to C[i][j]  (conv as W @ im2col: one bias per channel)
};

struct GemmEpilogue {
  BiasMode bias_mode = BiasMode::none;
  const float* bias = nullptr;
  int64_t bias_stride = 1;  // in elements
  Activation activation = Activation::none;
};

struct MatRef {
  const float* data;
  int64_t rs, cs;  // element strides between rows / columns
};

struct MutMatRef {
  float* data;
  int64_t rs, cs;
};

// Thread count: 0 means "choose from the global setting and the problem size".
void sgemm(int64_t m, int64_t n, int64_t k, float alpha, MatRef a, MatRef b, float beta,
           MutMatRef c, const GemmEpilogue& ep = GemmEpilogue{}, int nthreads = 0);

// The thread count sgemm chooses for a product of `flops` (2mnk) when given 0.
int sgemm_threads_for(double flops);

}  // namespace nnf
