// Raw-pointer nn kernels compiled once per ISA (the *.per_isa.cpp files in this
// folder, which register each kernel in its stub below); nn_dispatch.cpp resolves
// the stub once per call (common/dispatch.h).
//
// Conventions: "rows" kernels treat an array as (rows, n) with unit stride along
// n and a row stride ld (elements; may differ between inputs and outputs, so a
// sliced 2-D view needs no copy). `nt` is the thread count chosen by the caller
// (threads_for); work is split by whole rows/channels/columns so that every
// reduction runs in the same order for any nt (bitwise identical results).
#pragma once
#include <cstdint>

#include "common/dispatch.h"

namespace nnf {

enum class EltOp : int {
  relu,              // out = max(a, 0)
  relu_backward,     // out = a(dy) * (b(y) > 0)
  leaky_relu,        // out = a > 0 ? a : param * a
  leaky_relu_backward,  // out = a(dy) * (b(x) > 0 ? 1 : param)
  tanh,              // out = tanh(a)
  tanh_backward,     // out = a(dy) * (1 - b(y)^2)
  sigmoid,           // out = sigmoid(a)
  sigmoid_backward,  // out = a(dy) * b(y) * (1 - b(y))
  gelu_tanh,         // out = a * sigmoid(2u), u = sqrt(2/pi) (a + 0.044715 a^3)
  gelu_tanh_backward,  // out = a(dy) * d gelu_tanh / dx at b(x)
  gelu_erf,          // out = a * Phi(a)
  gelu_erf_backward,   // out = a(dy) * (Phi(b) + b * phi(b))
};

#define NNF_NN_KERNEL_DECLS                                                                     \
  void softmax_rows(int64_t rows, int64_t n, const float* x, int64_t ldx, float* y, int64_t ldy, \
                    int nt);                                                                     \
  void log_softmax_rows(int64_t rows, int64_t n, const float* x, int64_t ldx, float* y,          \
                        int64_t ldy, int nt);                                                    \
  void softmax_backward_rows(int64_t rows, int64_t n, const float* y, int64_t ldy,               \
                             const float* dy, int64_t lddy, float* dx, int64_t lddx, int nt);    \
  void log_softmax_backward_rows(int64_t rows, int64_t n, const float* y, int64_t ldy,           \
                                 const float* dy, int64_t lddy, float* dx, int64_t lddx, int nt); \
  void cross_entropy_rows(int64_t rows, int64_t c, const float* z, int64_t ldz,                  \
                          const int64_t* labels, const float* weight, float smoothing,           \
                          float weight_total, float grad_scale, float* loss_rows, float* dz,     \
                          int64_t lddz, int nt);                                                 \
  void eltwise(EltOp op, int64_t n, const float* a, const float* b, float param, float* out,    \
               int nt);                                                                          \
  void layer_norm_rows(int64_t rows, int64_t d, const float* x, int64_t ldx, const float* gamma, \
                       const float* beta, float eps, float* y, int64_t ldy, float* mean,         \
                       float* rstd, int nt);                                                     \
  void layer_norm_backward_chunks(int64_t rows, int64_t d, int64_t chunk_rows, const float* dy,  \
                                  int64_t lddy, const float* x, int64_t ldx, const float* gamma, \
                                  const float* mean, const float* rstd, float* dx, int64_t lddx, \
                                  float* partial_dgamma, float* partial_dbeta, int nt);          \
  void sum_chunk_partials(int64_t nchunks, int64_t d, const float* partial, float* out, int nt); \
  void channel_sums(int64_t n, int64_t c, int64_t s, const float* a, const float* shift_a,       \
                    const float* b, const float* shift_b, double* sum_a, double* sum_ab, int nt); \
  void channel_affine(int64_t n, int64_t c, int64_t s, const float* p, const float* coef_p,      \
                      const float* q, const float* coef_q, const float* shift_q,                 \
                      const float* offset, float* out, int nt);                                  \
  void dropout_forward(int64_t n, const float* x, uint64_t threshold, float scale, uint64_t seed, float* y,              \
                       uint8_t* mask, int nt);                                                   \
  void dropout_backward(int64_t n, const float* dy, const uint8_t* mask, float scale, float* dx, \
                        int nt);                                                                 \
  void sum_rows(int64_t rows, int64_t f, const float* x, int64_t ldx, float* out,                \
                bool accumulate, int nt);                                                        \
  void embedding_backward(int64_t count, int64_t d, const int64_t* indices, const float* dy,     \
                          int64_t lddy, float* dw, int nt);

namespace generic { NNF_NN_KERNEL_DECLS }
namespace avx2 { NNF_NN_KERNEL_DECLS }
namespace avx512 { NNF_NN_KERNEL_DECLS }

// One dispatch stub per kernel: defined in nn_dispatch.cpp, filled by the
// *.per_isa.cpp files.
namespace nn {
NNF_DECLARE_DISPATCH(decltype(&generic::softmax_rows), softmax_rows_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::log_softmax_rows), log_softmax_rows_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::softmax_backward_rows), softmax_backward_rows_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::log_softmax_backward_rows), log_softmax_backward_rows_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::cross_entropy_rows), cross_entropy_rows_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::eltwise), eltwise_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::layer_norm_rows), layer_norm_rows_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::layer_norm_backward_chunks), layer_norm_backward_chunks_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::sum_chunk_partials), sum_chunk_partials_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::channel_sums), channel_sums_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::channel_affine), channel_affine_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::dropout_forward), dropout_forward_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::dropout_backward), dropout_backward_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::sum_rows), sum_rows_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::embedding_backward), embedding_backward_stub);
}  // namespace nn

}  // namespace nnf
