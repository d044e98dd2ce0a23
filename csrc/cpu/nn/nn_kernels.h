// Training kernels other than GEMM: the portable entry points that bindings (and
// other C++ code) call. Each picks the ISA namespace per call, chooses a thread
// count from the problem size, and validates data-dependent inputs (labels,
// indices) before writing anything. Shape/dtype validation is the caller's job.
#pragma once
#include <cstdint>

#include "cpu/nn/nn_isa.h"

namespace nnf {
namespace nn {

enum class Reduction : int { none = 0, mean = 1, sum = 2 };

// Integer index arrays (labels, embedding indices): int32 or int64, any stride.
struct IndexRef {
  const void* data;
  bool is_int64;
  int64_t stride;  // in elements
  int64_t at(int64_t i) const {
    return is_int64 ? static_cast<const int64_t*>(data)[i * stride]
                    : static_cast<const int32_t*>(data)[i * stride];
  }
};

// x, y: (rows, n) with row strides; y may alias x exactly.
void softmax(int64_t rows, int64_t n, const float* x, int64_t ldx, float* y, int64_t ldy,
             bool log);
void softmax_backward(int64_t rows, int64_t n, const float* y, int64_t ldy, const float* dy,
                      int64_t lddy, float* dx, int64_t lddx, bool log);

// logits z (rows, c); labels (rows,); weight (c,) or null. Throws
// std::invalid_argument naming the first label outside [0, c). loss_rows (rows,)
// receives per-row losses (needed for Reduction::none; may be null otherwise),
// dz (rows, c) the gradient of the reduced loss (null: not computed; for
// Reduction::none the gradient of the sum). Returns the reduced loss (sum for none).
double cross_entropy(int64_t rows, int64_t c, const float* z, int64_t ldz, IndexRef labels,
                     const float* weight, float smoothing, Reduction reduction,
                     float* loss_rows, float* dz, int64_t lddz);

// out (n,) = op(a, b) elementwise; see EltOp.
void eltwise(EltOp op, int64_t n, const float* a, const float* b, float param, float* out);

// x, y: (rows, d); gamma, beta: (d,) or null; mean, rstd: (rows,).
void layer_norm(int64_t rows, int64_t d, const float* x, int64_t ldx, const float* gamma,
                const float* beta, float eps, float* y, int64_t ldy, float* mean, float* rstd);
// dx (rows, d) may be null; dgamma, dbeta (d,) may be null.
void layer_norm_backward(int64_t rows, int64_t d, const float* dy, int64_t lddy, const float* x,
                         int64_t ldx, const float* gamma, const float* mean, const float* rstd,
                         float* dx, int64_t lddx, float* dgamma, float* dbeta);

// x, y: (n, c, s) contiguous (s = product of spatial dims, 1 for (N, C)).
// training: batch statistics (n*s >= 2 checked by caller), running stats (may be
// null) updated in place with the unbiased variance; eval: running stats used.
// save_mean, save_rstd (c,) receive the statistics used.
void batch_norm(int64_t n, int64_t c, int64_t s, const float* x, const float* gamma,
                const float* beta, float* running_mean, float* running_var, bool training,
                float momentum, float eps, float* y, float* save_mean, float* save_rstd);
// training: gradient through the batch statistics; eval: statistics are constants.
// dx may be null; dgamma/dbeta (c,) may be null.
void batch_norm_backward(int64_t n, int64_t c, int64_t s, const float* dy, const float* x,
                         const float* gamma, const float* save_mean, const float* save_rstd,
                         bool training, float* dx, float* dgamma, float* dbeta);

void dropout(int64_t n, const float* x, double p, uint64_t seed, float* y, uint8_t* mask);
void dropout_backward(int64_t n, const float* dy, const uint8_t* mask, double p, float* dx);

// out (f,) = [out +] column sums of x (rows, f).
void sum_rows(int64_t rows, int64_t f, const float* x, int64_t ldx, float* out, bool accumulate);

// dw (num_embeddings, d) = [dw +] scatter-add of dy (count, d) rows at indices.
// Throws std::invalid_argument naming the first index outside [0, num_embeddings).
void embedding_backward(int64_t count, int64_t d, IndexRef indices, int64_t num_embeddings,
                        const float* dy, int64_t lddy, float* dw, bool accumulate);

}  // namespace nn
}  // namespace nnf
