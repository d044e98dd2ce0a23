// Layer norm (per row) and batch norm (per channel) building blocks.
//
// Determinism: layer-norm parameter gradients are reduced in fixed chunks of
// rows (chunk size chosen from the row count only) whose partials are summed in
// chunk order; batch-norm channel sums are owned by one thread per channel.
// Neither depends on the thread count.
#include <cmath>

#include "cpu/nn/nn_isa.h"

namespace nnf {
namespace NNF_ISA_NS {

// x, y: (rows, d); gamma, beta: (d,) or null; mean, rstd: (rows,).
void layer_norm_rows(int64_t rows, int64_t d, const float* x, int64_t ldx, const float* gamma,
                     const float* beta, float eps, float* y, int64_t ldy, float* mean,
                     float* rstd, int nt) {
  const float inv_d = 1.0f / static_cast<float>(d);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    float* yr = y + r * ldy;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < d; ++j) s += xr[j];
    const float mu = s * inv_d;
    float v = 0.0f;  // two-pass variance: no cancellation when |mean| >> std
#pragma omp simd reduction(+ : v)
    for (int64_t j = 0; j < d; ++j) v += (xr[j] - mu) * (xr[j] - mu);
    const float rs = 1.0f / std::sqrt(v * inv_d + eps);
    mean[r] = mu;
    rstd[r] = rs;
    if (gamma && beta) {
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) yr[j] = (xr[j] - mu) * rs * gamma[j] + beta[j];
    } else if (gamma) {
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) yr[j] = (xr[j] - mu) * rs * gamma[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) yr[j] = (xr[j] - mu) * rs + (beta ? beta[j] : 0.0f);
    }
  }
}

// For each chunk k of chunk_rows rows: dx for its rows (dx may be null) and the
// partial sums partial_dgamma[k, :] = sum dy * xhat, partial_dbeta[k, :] = sum dy
// (both null when not wanted). With g = dy * gamma and xhat = (x - mean) * rstd:
//   dx = rstd * (g - mean_j(g) - xhat * mean_j(g * xhat))
void layer_norm_backward_chunks(int64_t rows, int64_t d, int64_t chunk_rows, const float* dy,
                                int64_t lddy, const float* x, int64_t ldx, const float* gamma,
                                const float* mean, const float* rstd, float* dx, int64_t lddx,
                                float* partial_dgamma, float* partial_dbeta, int nt) {
  const int64_t nchunks = (rows + chunk_rows - 1) / chunk_rows;
  const float inv_d = 1.0f / static_cast<float>(d);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t k = 0; k < nchunks; ++k) {
    float* pdg = partial_dgamma ? partial_dgamma + k * d : nullptr;
    float* pdb = partial_dbeta ? partial_dbeta + k * d : nullptr;
    if (pdg)
      for (int64_t j = 0; j < d; ++j) pdg[j] = 0.0f;
    if (pdb)
      for (int64_t j = 0; j < d; ++j) pdb[j] = 0.0f;
    const int64_t r_end = (k + 1) * chunk_rows < rows ? (k + 1) * chunk_rows : rows;
    for (int64_t r = k * chunk_rows; r < r_end; ++r) {
      const float* dyr = dy + r * lddy;
      const float* xr = x + r * ldx;
      const float mu = mean[r], rs = rstd[r];
      if (pdg) {
#pragma omp simd
        for (int64_t j = 0; j < d; ++j) pdg[j] += dyr[j] * ((xr[j] - mu) * rs);
      }
      if (pdb) {
#pragma omp simd
        for (int64_t j = 0; j < d; ++j) pdb[j] += dyr[j];
      }
      if (!dx) continue;
      float sg = 0.0f, sgx = 0.0f;
      if (gamma) {
#pragma omp simd reduction(+ : sg, sgx)
        for (int64_t j = 0; j < d; ++j) {
          const float g = dyr[j] * gamma[j];
          sg += g;
          sgx += g * ((xr[j] - mu) * rs);
        }
      } else {
#pragma omp simd reduction(+ : sg, sgx)
        for (int64_t j = 0; j < d; ++j) {
          sg += dyr[j];
          sgx += dyr[j] * ((xr[j] - mu) * rs);
        }
      }
      const float mg = sg * inv_d, mgx = sgx * inv_d;
      float* dxr = dx + r * lddx;
      if (gamma) {
#pragma omp simd
        for (int64_t j = 0; j < d; ++j)
          dxr[j] = rs * (dyr[j] * gamma[j] - mg - ((xr[j] - mu) * rs) * mgx);
      } else {
#pragma omp simd
        for (int64_t j = 0; j < d; ++j) dxr[j] = rs * (dyr[j] - mg - ((xr[j] - mu) * rs) * mgx);
      }
    }
  }
}

// out[j] = sum over k (in order) of partial[k, j]; partial is (nchunks, d).
void sum_chunk_partials(int64_t nchunks, int64_t d, const float* partial, float* out, int nt) {
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t j0 = 0; j0 < d; j0 += 256) {
    const int64_t w = d - j0 < 256 ? d - j0 : 256;
    float* o = out + j0;
    for (int64_t j = 0; j < w; ++j) o[j] = 0.0f;
    for (int64_t k = 0; k < nchunks; ++k) {
      const float* pk = partial + k * d + j0;
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) o[j] += pk[j];
    }
  }
}

// a, b: (n, c, s) contiguous; shift_a, shift_b: (c,) or null (= 0); b may be null.
//   sum_a[ch]  = sum over (i, t) of (a - shift_a[ch])
//   sum_ab[ch] = sum over (i, t) of (a - shift_a[ch]) * (b - shift_b[ch])   (if b)
// Accumulated in double: a channel can hold N*H*W values.
void channel_sums(int64_t n, int64_t c, int64_t s, const float* a, const float* shift_a,
                  const float* b, const float* shift_b, double* sum_a, double* sum_ab, int nt) {
  if (s == 1) {
    // (n, c): columns. Each thread owns whole 64-channel blocks; rows are summed
    // in order, vectorised across channels.
    const int64_t nblocks = (c + 63) / 64;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t blk = 0; blk < nblocks; ++blk) {
      const int64_t c0 = blk * 64;
      const int64_t w = c - c0 < 64 ? c - c0 : 64;
      double acc1[64], acc2[64];
      float sa[64], sb[64];
      for (int64_t j = 0; j < w; ++j) {
        acc1[j] = 0.0;
        acc2[j] = 0.0;
        sa[j] = shift_a ? shift_a[c0 + j] : 0.0f;
        sb[j] = shift_b ? shift_b[c0 + j] : 0.0f;
      }
      for (int64_t i = 0; i < n; ++i) {
        const float* ar = a + i * c + c0;
        if (b) {
          const float* br = b + i * c + c0;
#pragma omp simd
          for (int64_t j = 0; j < w; ++j) {
            const float u = ar[j] - sa[j];
            acc1[j] += u;
            acc2[j] += static_cast<double>(u * (br[j] - sb[j]));
          }
        } else {
#pragma omp simd
          for (int64_t j = 0; j < w; ++j) acc1[j] += ar[j] - sa[j];
        }
      }
      for (int64_t j = 0; j < w; ++j) {
        sum_a[c0 + j] = acc1[j];
        if (b) sum_ab[c0 + j] = acc2[j];
      }
    }
    return;
  }
  // (n, c, s) with s > 1: each channel is n contiguous runs of s floats; a float
  // partial per run, accumulated in double across runs.
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t ch = 0; ch < c; ++ch) {
    const float sa = shift_a ? shift_a[ch] : 0.0f;
    const float sb = shift_b ? shift_b[ch] : 0.0f;
    double acc1 = 0.0, acc2 = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const float* ar = a + (i * c + ch) * s;
      float p1 = 0.0f, p2 = 0.0f;
      if (b) {
        const float* br = b + (i * c + ch) * s;
#pragma omp simd reduction(+ : p1, p2)
        for (int64_t t = 0; t < s; ++t) {
          const float u = ar[t] - sa;
          p1 += u;
          p2 += u * (br[t] - sb);
        }
      } else {
#pragma omp simd reduction(+ : p1)
        for (int64_t t = 0; t < s; ++t) p1 += ar[t] - sa;
      }
      acc1 += p1;
      acc2 += p2;
    }
    sum_a[ch] = acc1;
    if (b) sum_ab[ch] = acc2;
  }
}

// out = coef_p[ch] * p + coef_q[ch] * (q - shift_q[ch]) + offset[ch] over (n, c, s);
// either p or q may be null (its term dropped). Subtracting the shift before
// scaling keeps batch norm accurate when |mean| >> std. out may alias p or q.
void channel_affine(int64_t n, int64_t c, int64_t s, const float* p, const float* coef_p,
                    const float* q, const float* coef_q, const float* shift_q,
                    const float* offset, float* out, int nt) {
  if (s == 1) {
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      float* orow = out + i * c;
      const float* pr = p ? p + i * c : nullptr;
      const float* qr = q ? q + i * c : nullptr;
      if (p && q) {
#pragma omp simd
        for (int64_t j = 0; j < c; ++j)
          orow[j] = coef_p[j] * pr[j] + coef_q[j] * (qr[j] - shift_q[j]) + offset[j];
      } else if (p) {
#pragma omp simd
        for (int64_t j = 0; j < c; ++j) orow[j] = coef_p[j] * pr[j] + offset[j];
      } else {
#pragma omp simd
        for (int64_t j = 0; j < c; ++j) orow[j] = coef_q[j] * (qr[j] - shift_q[j]) + offset[j];
      }
    }
    return;
  }
  const int64_t planes = n * c;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const int64_t ch = pl % c;
    const float cp = p ? coef_p[ch] : 0.0f, off = offset[ch];
    const float cq = q ? coef_q[ch] : 0.0f, sq = q ? shift_q[ch] : 0.0f;
    float* orow = out + pl * s;
    const float* pr = p ? p + pl * s : nullptr;
    const float* qr = q ? q + pl * s : nullptr;
    if (p && q) {
#pragma omp simd
      for (int64_t t = 0; t < s; ++t) orow[t] = cp * pr[t] + cq * (qr[t] - sq) + off;
    } else if (p) {
#pragma omp simd
      for (int64_t t = 0; t < s; ++t) orow[t] = cp * pr[t] + off;
    } else {
#pragma omp simd
      for (int64_t t = 0; t < s; ++t) orow[t] = cq * (qr[t] - sq) + off;
    }
  }
}

NNF_REGISTER_PER_ISA(nn::layer_norm_rows_stub, layer_norm_rows);
NNF_REGISTER_PER_ISA(nn::layer_norm_backward_chunks_stub, layer_norm_backward_chunks);
NNF_REGISTER_PER_ISA(nn::sum_chunk_partials_stub, sum_chunk_partials);
NNF_REGISTER_PER_ISA(nn::channel_sums_stub, channel_sums);
NNF_REGISTER_PER_ISA(nn::channel_affine_stub, channel_affine);

}  // namespace NNF_ISA_NS
}  // namespace nnf
