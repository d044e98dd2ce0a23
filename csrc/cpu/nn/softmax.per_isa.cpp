// Row-wise softmax / log-softmax (forward and backward) and the fused
// cross-entropy (log-softmax + NLL + label smoothing + its gradient).
//
// Each row is (n,) with unit stride; rows are split across threads whole, so a
// row's reductions (max, sum of exp) run in one fixed order for any thread count.
// Stability: every exp() argument is x - max(row) <= 0, so 1e4-sized outliers
// cannot overflow.
#include <cmath>
#include <limits>

#include "cpu/nn/nn_isa.h"
#include "cpu/nn/vmath.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace {

inline float row_max(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < n; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

// Sum of exp(x - m) over the row; also stores the terms into y when y != nullptr.
inline float row_sum_exp(const float* x, int64_t n, float m, float* y) {
  float s = 0.0f;
  if (y) {
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < n; ++j) {
      const float e = vm_exp(x[j] - m);
      y[j] = e;
      s += e;
    }
  } else {
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < n; ++j) s += vm_exp(x[j] - m);
  }
  return s;
}

inline float row_dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; ++j) s += a[j] * b[j];
  return s;
}

inline float row_sum(const float* a, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; ++j) s += a[j];
  return s;
}

}  // namespace

// x, y: (rows, n). y may alias x exactly (in place).
void softmax_rows(int64_t rows, int64_t n, const float* x, int64_t ldx, float* y, int64_t ldy,
                  int nt) {
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    const float m = row_max(xr, n);
    const float inv = 1.0f / row_sum_exp(xr, n, m, yr);
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) yr[j] *= inv;
  }
}

// y = x - max - log(sum(exp(x - max))).
void log_softmax_rows(int64_t rows, int64_t n, const float* x, int64_t ldx, float* y,
                      int64_t ldy, int nt) {
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    const float m = row_max(xr, n);
    const float shift = m + std::log(row_sum_exp(xr, n, m, nullptr));
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) yr[j] = xr[j] - shift;
  }
}

// dx = y * (dy - sum(dy * y)), y = softmax output.
void softmax_backward_rows(int64_t rows, int64_t n, const float* y, int64_t ldy, const float* dy,
                           int64_t lddy, float* dx, int64_t lddx, int nt) {
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* yr = y + r * ldy;
    const float* dyr = dy + r * lddy;
    float* dxr = dx + r * lddx;
    const float s = row_dot(yr, dyr, n);
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) dxr[j] = yr[j] * (dyr[j] - s);
  }
}

// dx = dy - exp(y) * sum(dy), y = log-softmax output.
void log_softmax_backward_rows(int64_t rows, int64_t n, const float* y, int64_t ldy,
                               const float* dy, int64_t lddy, float* dx, int64_t lddx, int nt) {
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* yr = y + r * ldy;
    const float* dyr = dy + r * lddy;
    float* dxr = dx + r * lddx;
    const float s = row_sum(dyr, n);
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) dxr[j] = dyr[j] - vm_exp(yr[j]) * s;
  }
}

// Fused cross-entropy over logits z (rows, c) with validated labels (rows,).
// Per row (torch semantics, eps = smoothing, w = weight or 1, W = weight_total):
//   loss = (1-eps) w[y] (lse - z[y]) + eps/c * sum_k w[k] (lse - z[k])
//   dz[k] = grad_scale * (p[k] ((1-eps) w[y] + eps/c W) - eps/c w[k] - (1-eps) w[y] [k==y])
// loss_rows gets the unscaled per-row loss; dz (optional) the scaled gradient.
void cross_entropy_rows(int64_t rows, int64_t c, const float* z, int64_t ldz,
                        const int64_t* labels, const float* weight, float smoothing,
                        float weight_total, float grad_scale, float* loss_rows, float* dz,
                        int64_t lddz, int nt) {
  const float eps_c = smoothing / static_cast<float>(c);
  const float keep = 1.0f - smoothing;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* zr = z + r * ldz;
    const int64_t y = labels[r];
    const float wy = weight ? weight[y] : 1.0f;
    const float m = row_max(zr, c);
    const float log_s = std::log(row_sum_exp(zr, c, m, nullptr));
    // lse - z[k] = log_s - (z[k] - m): each term >= 0, no cancellation against lse.
    float loss = keep * wy * (log_s - (zr[y] - m));
    if (smoothing != 0.0f) {
      float acc = 0.0f;
      if (weight) {
#pragma omp simd reduction(+ : acc)
        for (int64_t k = 0; k < c; ++k) acc += weight[k] * (log_s - (zr[k] - m));
      } else {
#pragma omp simd reduction(+ : acc)
        for (int64_t k = 0; k < c; ++k) acc += log_s - (zr[k] - m);
      }
      loss += eps_c * acc;
    }
    loss_rows[r] = loss;
    if (dz) {
      float* dr = dz + r * lddz;
      const float shift = m + log_s;
      const float a = grad_scale * (keep * wy + eps_c * weight_total);
      const float b = grad_scale * eps_c;
      if (weight) {
#pragma omp simd
        for (int64_t k = 0; k < c; ++k) dr[k] = vm_exp(zr[k] - shift) * a - b * weight[k];
      } else {
#pragma omp simd
        for (int64_t k = 0; k < c; ++k) dr[k] = vm_exp(zr[k] - shift) * a - b;
      }
      dr[y] -= grad_scale * keep * wy;
    }
  }
}

NNF_REGISTER_PER_ISA(nn::softmax_rows_stub, softmax_rows);
NNF_REGISTER_PER_ISA(nn::log_softmax_rows_stub, log_softmax_rows);
NNF_REGISTER_PER_ISA(nn::softmax_backward_rows_stub, softmax_backward_rows);
NNF_REGISTER_PER_ISA(nn::log_softmax_backward_rows_stub, log_softmax_backward_rows);
NNF_REGISTER_PER_ISA(nn::cross_entropy_rows_stub, cross_entropy_rows);

}  // namespace NNF_ISA_NS
}  // namespace nnf
