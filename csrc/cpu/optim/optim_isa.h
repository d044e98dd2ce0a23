// Raw-pointer optimizer kernels compiled once per ISA (the *.per_isa.cpp files in
// this folder, which register each kernel in its stub below); optim_dispatch.cpp
// builds the work list, picks the thread split and resolves the stub once per call.
//
// Work list: every tensor is cut into fixed chunks of kOptChunk elements (the last
// one shorter). Chunk boundaries depend only on tensor sizes, never on the thread
// count, and threads take whole chunks, so each element goes through the same code
// path (vector body or tail) for any split: results are bitwise identical for 1 and
// 2 threads, and the per-chunk partial sums of grad_norm are too.
#pragma once
#include <cstdint>

#include "common/dispatch.h"

namespace nnf {

// 32K floats = 128 KiB per stream: long enough that the loop and prefetcher
// overheads vanish, short enough that 1M params in 50 tensors still balance.
constexpr int64_t kOptChunk = 32768;

// One parameter tensor and its same-shaped buffers (n elements each). Unused state
// pointers are null. The meaning of s0..s2 is per optimizer (see each kernel).
// mask (optional, pruning): where mask[i] == 0 the step stores 0 to p[i] and to every
// state buffer (pruned weights stay exactly 0, their moments stay 0).
// bf16 (optional, mixed precision): the step also stores the updated p[i] rounded to
// bfloat16 (round to nearest even; raw bits) there.
// Within one call either every tensor has a mask / bf16 copy or none has.
struct OptTensor {
  float* p;
  float* g;
  float* s0;
  float* s1;
  float* s2;
  int64_t n;
  const uint8_t* mask;
  uint16_t* bf16;
};

// Elements [off, off + len) of tensor *t.
struct OptChunk {
  const OptTensor* t;
  int64_t off;
  int64_t len;
};

// Per-call scalars, computed once in double by the dispatcher, rounded to float as
// torch does when it applies a Python scalar to a float32 tensor.
struct SgdScalars {
  float grad_scale;  // includes the sign flip for maximize
  float weight_decay, momentum, one_minus_dampening, neg_lr;
  bool has_weight_decay, has_momentum, first_step, nesterov, zero_grad;
};

struct AdamScalars {
  float grad_scale;      // includes the sign flip for maximize
  float weight_decay;    // L2 (Adam): g += wd * p
  float param_decay;     // decoupled (AdamW): p *= 1 - lr * wd (1 when unused)
  float one_minus_beta1, beta2, one_minus_beta2;
  float inv_bias_correction2_sqrt, eps, neg_step_size;  // 1 / sqrt(1 - beta2^step)
  bool l2, amsgrad, zero_grad;
};

struct RmspropScalars {
  float grad_scale, weight_decay, alpha, one_minus_alpha, eps, momentum, neg_lr;
  bool has_weight_decay, centered, has_momentum, zero_grad;
};

struct AdagradScalars {
  float grad_scale, weight_decay, eps, neg_clr;
  bool has_weight_decay, zero_grad;
};

// State pointers per optimizer:
//   sgd:     s0 = momentum buffer
//   adam(w): s0 = exp_avg, s1 = exp_avg_sq, s2 = max_exp_avg_sq (amsgrad)
//   rmsprop: s0 = square_avg, s1 = momentum buffer, s2 = grad_avg (centered)
//   adagrad: s0 = state_sum
#define NNF_OPTIM_KERNEL_DECLS                                                                  \
  void sgd_chunks(const SgdScalars& s, const OptChunk* chunks, int64_t count);                 \
  void adam_chunks(const AdamScalars& s, const OptChunk* chunks, int64_t count);               \
  void rmsprop_chunks(const RmspropScalars& s, const OptChunk* chunks, int64_t count);         \
  void adagrad_chunks(const AdagradScalars& s, const OptChunk* chunks, int64_t count);         \
  /* partial[i] = sum of g^2 over chunk i, in float64 (fixed order within a chunk) */          \
  void sumsq_chunks(const OptChunk* chunks, int64_t count, double* partial);                   \
  /* true when every g in the chunks is finite */                                              \
  bool finite_chunks(const OptChunk* chunks, int64_t count);                                   \
  void scale_chunks(float scale, const OptChunk* chunks, int64_t count);                       \
  /* a[i] = b[i] + s * c[i] for i in [lo, hi) */                                               \
  void triad_range(float* a, const float* b, const float* c, float s, int64_t lo, int64_t hi);

namespace generic { NNF_OPTIM_KERNEL_DECLS }
namespace avx2 { NNF_OPTIM_KERNEL_DECLS }
namespace avx512 { NNF_OPTIM_KERNEL_DECLS }

// One dispatch stub per kernel: defined in optim_dispatch.cpp, filled by the
// *.per_isa.cpp files.
namespace optim {
NNF_DECLARE_DISPATCH(decltype(&generic::sgd_chunks), sgd_chunks_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::adam_chunks), adam_chunks_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::rmsprop_chunks), rmsprop_chunks_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::adagrad_chunks), adagrad_chunks_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::sumsq_chunks), sumsq_chunks_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::finite_chunks), finite_chunks_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::scale_chunks), scale_chunks_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::triad_range), triad_range_stub);
}  // namespace optim

}  // namespace nnf
