// Multi-tensor optimizer steps on float32 buffers (the portable interface used by
// csrc/bindings/bind_optim.cpp). Callers pass validated, non-overlapping,
// contiguous buffers; every function walks all tensors in one parallel region.
//
// Steps return false (and write nothing) when check_finite is set and a gradient
// holds inf/NaN, or the grad_scale itself is not finite.
#pragma once
#include <cstdint>
#include <vector>

#include "cpu/optim/optim_isa.h"

namespace nnf {
namespace optim {

// Options shared by every step.
struct GradOptions {
  double grad_scale = 1.0;  // g = grad_scale * grad as it is read
  bool maximize = false;
  bool zero_grad = false;   // write 0 to grads in the same pass
  bool check_finite = false;
};

struct SgdHyper {
  double lr, momentum, dampening, weight_decay;
  bool nesterov;
  int64_t step;  // 1-based; step 1 initialises the momentum buffer to g
};

struct AdamHyper {
  double lr, beta1, beta2, eps, weight_decay;
  bool amsgrad, decoupled;  // decoupled = AdamW
  int64_t step;             // 1-based
};

struct RmspropHyper {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered;
};

struct AdagradHyper {
  double lr, lr_decay, weight_decay, eps;
  int64_t step;  // 1-based
};

// Tensors: s0..s2 as documented in optim_isa.h.
bool sgd_step(const std::vector<OptTensor>& ts, const SgdHyper& h, const GradOptions& o);
bool adam_step(const std::vector<OptTensor>& ts, const AdamHyper& h, const GradOptions& o);
bool rmsprop_step(const std::vector<OptTensor>& ts, const RmspropHyper& h, const GradOptions& o);
bool adagrad_step(const std::vector<OptTensor>& ts, const AdagradHyper& h, const GradOptions& o);

// Global L2 norm of every .g, accumulated in float64 over fixed chunks combined in
// order: identical for any thread count.
double grad_norm(const std::vector<OptTensor>& ts);
// min(1, max_norm / (norm + eps)) (NaN stays NaN, as in torch.nn.utils.clip_grad_norm_).
double clip_coef(double norm, double max_norm, double eps);
// Scales every .g by clip_coef(norm) when it is not >= 1; returns the pre-clip norm.
double clip_grad_norm(const std::vector<OptTensor>& ts, double max_norm, double eps);

// How chunks are shared among threads (variants kept for benchmarks; results are
// identical either way): static_split = equal elements per thread up front;
// dynamic_chunks = threads take chunks one at a time from a shared counter.
enum class Schedule : int { static_split = 0, dynamic_chunks = 1 };
void set_schedule(Schedule s);
Schedule get_schedule();

// a = b + s * c (n floats), STREAM triad.
void stream_triad(float* a, const float* b, const float* c, float s, int64_t n);

}  // namespace optim
}  // namespace nnf
