// Elementwise activations and their backward passes, plus inverted dropout.
//
// Arrays are flat (n,) and contiguous; threads take contiguous 64-element-aligned
// ranges. Elementwise results do not depend on the split, so any thread count
// gives bitwise identical output.
#include <omp.h>

#include <cmath>

#include "cpu/nn/nn_isa.h"
#include "cpu/nn/vmath.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kGeluCubic = 0.044715f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;  // 1/sqrt(2 pi)

// [lo, hi) of n for thread t of nt, in 64-element multiples so threads never share
// a cache line of the output.
inline void thread_range(int64_t n, int t, int nt, int64_t& lo, int64_t& hi) {
  int64_t chunk = (n + nt - 1) / nt;
  chunk = (chunk + 63) & ~int64_t(63);
  lo = chunk * t < n ? chunk * t : n;
  hi = lo + chunk < n ? lo + chunk : n;
}

void eltwise_range(EltOp op, const float* a, const float* b, float param, float* out,
                   int64_t lo, int64_t hi) {
  switch (op) {
    case EltOp::relu:
#pragma omp simd
      for (int64_t i = lo; i < hi; ++i) out[i] = a[i] < 0.0f ? 0.0f : a[i];  // NaN passes (torch)
      break;
    case EltOp::relu_backward:
#pragma omp simd
      for (int64_t i = lo; i < hi; ++i) out[i] = b[i] > 0.0f ? a[i] : 0.0f;
      break;
    case EltOp::leaky_relu:
#pragma omp simd
      for (int64_t i = lo; i < hi; ++i) out[i] = a[i] > 0.0f ? a[i] : a[i] * param;
      break;
    case EltOp::leaky_relu_backward:
#pragma omp simd
      for (int64_t i = lo; i < hi; ++i) out[i] = b[i] > 0.0f ? a[i] : a[i] * param;
      break;
    case EltOp::tanh:
#pragma omp simd
      for (int64_t i = lo; i < hi; ++i) out[i] = vm_tanh(a[i]);
      break;
    case EltOp::tanh_backward:
#pragma omp simd
      for (int64_t i = lo; i < hi; ++i) out[i] = a[i] * (1.0f - b[i] * b[i]);
      break;
    case EltOp::sigmoid:
#pragma omp simd
      for (int64_t i = lo; i < hi; ++i) out[i] = vm_sigmoid(a[i]);
      break;
    case EltOp::sigmoid_backward:
#pragma omp simd
      for (int64_t i = lo; i < hi; ++i) out[i] = a[i] * (b[i] * (1.0f - b[i]));
      break;
    case EltOp::gelu_tanh:
      // 0.5 x (1 + tanh(u)) == x * sigmoid(2u): no cancellation for x << 0.
#pragma omp simd
      for (int64_t i = lo; i < hi; ++i) {
        const float x = a[i];
        const float u2 = 2.0f * kSqrt2OverPi * (x + kGeluCubic * x * x * x);
        out[i] = x * vm_sigmoid(u2);
      }
      break;
    case EltOp::gelu_tanh_backward:
      // d/dx [x s(2u)] = s + 2 x s (1 - s) u'(x),  u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
#pragma omp simd
      for (int64_t i = lo; i < hi; ++i) {
        const float x = b[i];
        const float x2 = x * x;
        const float s = vm_sigmoid(2.0f * kSqrt2OverPi * (x + kGeluCubic * x2 * x));
        const float du = kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x2);
        out[i] = a[i] * (s + 2.0f * x * s * (1.0f - s) * du);
      }
      break;
    case EltOp::gelu_erf:
      // Phi(x) = erfc(-x/sqrt2)/2 keeps relative accuracy for x << 0. glibc's
      // erfcf is scalar; the exact GELU is the less common variant.
      for (int64_t i = lo; i < hi; ++i) out[i] = a[i] * (0.5f * std::erfc(-a[i] * kInvSqrt2));
      break;
    case EltOp::gelu_erf_backward:
      for (int64_t i = lo; i < hi; ++i) {
        const float x = b[i];
        const float cdf = 0.5f * std::erfc(-x * kInvSqrt2);
        const float pdf = kInvSqrt2Pi * vm_exp(-0.5f * x * x);
        out[i] = a[i] * (cdf + x * pdf);
      }
      break;
  }
}

// Counter-based hash (splitmix64 finaliser) of (seed, element index): the mask
// depends only on those two, never on the thread split.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

// out = op(a, b); b is the second operand for the *_backward ops (else unused).
void eltwise(EltOp op, int64_t n, const float* a, const float* b, float param, float* out,
             int nt) {
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int64_t lo, hi;
    thread_range(n, omp_get_thread_num(), omp_get_num_threads(), lo, hi);
    eltwise_range(op, a, b, param, out, lo, hi);
  }
}

// Keep element i iff the top 32 bits of hash(seed, i) >= threshold (= p * 2^32);
// kept values are scaled by scale (= 1/(1-p), inverted dropout). mask[i] = 1 when kept.
void dropout_forward(int64_t n, const float* x, uint64_t threshold, float scale, uint64_t seed,
                     float* y, uint8_t* mask, int nt) {
  const uint64_t key = mix64(seed ^ 0x6A09E667F3BCC909ull);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int64_t lo, hi;
    thread_range(n, omp_get_thread_num(), omp_get_num_threads(), lo, hi);
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) {
      const uint64_t h = mix64(key + static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull);
      const bool keep = (h >> 32) >= threshold;
      mask[i] = keep ? 1 : 0;
      y[i] = keep ? x[i] * scale : 0.0f;
    }
  }
}

void dropout_backward(int64_t n, const float* dy, const uint8_t* mask, float scale, float* dx,
                      int nt) {
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int64_t lo, hi;
    thread_range(n, omp_get_thread_num(), omp_get_num_threads(), lo, hi);
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) dx[i] = mask[i] ? dy[i] * scale : 0.0f;
  }
}

NNF_REGISTER_PER_ISA(nn::eltwise_stub, eltwise);
NNF_REGISTER_PER_ISA(nn::dropout_forward_stub, dropout_forward);
NNF_REGISTER_PER_ISA(nn::dropout_backward_stub, dropout_backward);

}  // namespace NNF_ISA_NS
}  // namespace nnf
