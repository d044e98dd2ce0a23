// The int8 GEMM frame: weight packing, the task loop over (row block, column panel)
// and the epilogues of qgemm_s32 / qlinear / qconv2d. The micro-kernel (qgemm_kernel.h)
// is the dispatch stub's; everything here is portable.
//
// Tasks: row blocks of kQMaxRows x panels of kQNr columns, panel-major so one panel
// (kg * 128 bytes) stays in cache while the row blocks stream past. Each task writes
// its own output elements from exact int32 sums, so results are the same bits for any
// thread count.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/threads.h"
#include "cpu/gemm/activation_scalar.h"
#include "cpu/quant/qgemm_kernel.h"
#include "cpu/quant/quant.h"

namespace nnf {
namespace quant {

NNF_DEFINE_DISPATCH("quant", qgemm_panel_stub);

int64_t packed_groups(int64_t k) { return (k + 3) / 4; }
int64_t packed_size(int64_t n, int64_t k) { return (n + kQNr - 1) / kQNr * kQNr * 4 * packed_groups(k); }

void pack_weight(const int8_t* w, int64_t n, int64_t k, int64_t s0, int64_t s1, int8_t* packed,
                 int32_t* col_sums) {
  const int64_t kg = packed_groups(k);
  std::fill(packed, packed + packed_size(n, k), int8_t(0));
  for (int64_t j = 0; j < n; ++j) {
    int8_t* col = packed + (j / kQNr) * kg * kQNr * 4 + (j % kQNr) * 4;
    int32_t sum = 0;
    for (int64_t kk = 0; kk < k; ++kk) {
      const int8_t v = w[j * s0 + kk * s1];
      col[(kk / 4) * kQNr * 4 + kk % 4] = v;
      sum += v;
    }
    col_sums[j] = sum;
  }
}

void unpack_weight(const int8_t* packed, int64_t n, int64_t k, int8_t* w) {
  const int64_t kg = packed_groups(k);
  for (int64_t j = 0; j < n; ++j) {
    const int8_t* col = packed + (j / kQNr) * kg * kQNr * 4 + (j % kQNr) * 4;
    for (int64_t kk = 0; kk < k; ++kk) w[j * k + kk] = col[(kk / 4) * kQNr * 4 + kk % 4];
  }
}

namespace {

// a (m, lda) uint8 padded rows; epi(i0, mc, j0, nc, tile) consumes an int32 tile
// (mc, kQNr) whose first nc columns are real.
template <class Epilogue>
void run_tasks(int64_t m, int64_t kg, const uint8_t* a, int64_t lda, const int8_t* packed, int64_t n, int nt,
               const Epilogue& epi) {
  const QgemmPanelFn kernel = qgemm_panel_stub.get();
  const int64_t mb = (m + kQMaxRows - 1) / kQMaxRows, np = (n + kQNr - 1) / kQNr;
  const int64_t tasks = mb * np;
  nt = int(std::max<int64_t>(1, std::min<int64_t>(nt, tasks)));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t t = 0; t < tasks; ++t) {
    alignas(64) int32_t tile[kQMaxRows * kQNr];
    const int64_t p = t / mb, i0 = (t % mb) * kQMaxRows;
    const int64_t mc = std::min(kQMaxRows, m - i0), j0 = p * kQNr, nc = std::min(kQNr, n - j0);
    kernel(mc, kg, a + i0 * lda, lda, packed + p * kg * kQNr * 4, tile);
    epi(i0, mc, j0, nc, tile);
  }
}

int gemm_threads(int64_t m, int64_t n, int64_t k) { return threads_for(2.0 * double(m) * double(n) * double(k)); }

// q = clamp(rint(v / scale) + zp, lo, hi), exact quotient in double (round half even).
inline int32_t quantize_one(float v, double scale, int32_t zp, int32_t lo, int32_t hi) {
  const double r = std::nearbyint(double(v) / scale) + double(zp);
  return int32_t(std::min(double(hi), std::max(double(lo), r)));
}

// The float epilogue: y = act(float(acc - zp * col_sum) * (sx * sw) + bias).
inline float dequant_one(int32_t acc, int32_t zp, int32_t col_sum, float sx, float sw, float bias, int act) {
  const int32_t exact = int32_t(int64_t(acc) - int64_t(zp) * col_sum);
  return gemm::activate_scalar(float(exact) * (sx * sw) + bias, act);
}

}  // namespace

InputQuant range_quant(float lo, float hi) {
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  InputQuant q;
  q.dynamic = false;
  const float scale = float((double(hi) - double(lo)) / 255.0);
  if (!(scale > 0.0f)) return q;  // all zeros (or a range below the smallest float): scale 1, zp 0
  q.scale = scale;
  q.zero_point = int32_t(std::min(255.0, std::max(0.0, std::nearbyint(-double(lo) / double(scale)))));
  return q;
}

void qgemm_s32(const uint8_t* a, int64_t m, int64_t k, int64_t sa0, int64_t sa1, const int8_t* b, int64_t n,
               int64_t sb0, int64_t sb1, int32_t* c) {
  if (m == 0 || n == 0) return;
  const int64_t kg = packed_groups(k), lda = 4 * kg;
  std::vector<int8_t> packed(static_cast<size_t>(packed_size(n, k)));
  std::vector<int32_t> sums(static_cast<size_t>(n));
  pack_weight(b, n, k, sb1, sb0, packed.data(), sums.data());  // b (k, n) seen as (n, k)
  std::vector<uint8_t> ap(size_t(m * lda), 0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t kk = 0; kk < k; ++kk) ap[size_t(i * lda + kk)] = a[i * sa0 + kk * sa1];
  run_tasks(m, kg, ap.data(), lda, packed.data(), n, gemm_threads(m, n, k),
            [&](int64_t i0, int64_t mc, int64_t j0, int64_t nc, const int32_t* tile) {
              for (int64_t i = 0; i < mc; ++i) std::copy(tile + i * kQNr, tile + i * kQNr + nc, c + (i0 + i) * n + j0);
            });
}

void qlinear(const float* x, int64_t m, int64_t sx0, int64_t sx1, const PackedWeight& w, const float* bias,
             Activation act, const InputQuant& iq, float* y) {
  const int64_t k = w.k, n = w.n, kg = packed_groups(k), lda = 4 * kg;
  if (m == 0 || n == 0) return;
  std::vector<uint8_t> aq(size_t(m * lda), 0);
  std::vector<float> row_scale(static_cast<size_t>(m));
  std::vector<int32_t> row_zp(static_cast<size_t>(m));
  const int nt = gemm_threads(m, n, k);
#pragma omp parallel for num_threads(std::max(1, std::min<int>(nt, int(m)))) schedule(static)
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * sx0;
    InputQuant q = iq;
    if (iq.dynamic) {
      float lo = 0.0f, hi = 0.0f;
      for (int64_t kk = 0; kk < k; ++kk) {
        lo = std::min(lo, xi[kk * sx1]);
        hi = std::max(hi, xi[kk * sx1]);
      }
      q = range_quant(lo, hi);
    }
    row_scale[size_t(i)] = q.scale;
    row_zp[size_t(i)] = q.zero_point;
    uint8_t* ai = aq.data() + i * lda;
    for (int64_t kk = 0; kk < k; ++kk) ai[kk] = uint8_t(quantize_one(xi[kk * sx1], q.scale, q.zero_point, 0, 255));
  }
  const int a = int(act);
  run_tasks(m, kg, aq.data(), lda, w.data, n, nt,
            [&](int64_t i0, int64_t mc, int64_t j0, int64_t nc, const int32_t* tile) {
              for (int64_t i = 0; i < mc; ++i) {
                const float sx = row_scale[size_t(i0 + i)];
                const int32_t zp = row_zp[size_t(i0 + i)];
                float* yi = y + (i0 + i) * n + j0;
                for (int64_t j = 0; j < nc; ++j)
                  yi[j] = dequant_one(tile[i * kQNr + j], zp, w.col_sums[j0 + j], sx, w.scales[j0 + j],
                                      bias ? bias[j0 + j] : 0.0f, a);
              }
            });
}

void qconv2d(const conv::ConvShape& s, const float* x, const PackedWeight& w, const float* bias, Activation act,
             const InputQuant& iq, float* y) {
  const int64_t chw = s.c * s.h * s.w, total = s.n * chw, p = s.howo(), k = s.crs(), kg = packed_groups(k);
  const int64_t lda = 4 * kg;
  InputQuant q = iq;
  if (iq.dynamic) {
    float lo = 0.0f, hi = 0.0f;
    for (int64_t i = 0; i < total; ++i) {
      lo = std::min(lo, x[i]);
      hi = std::max(hi, x[i]);
    }
    q = range_quant(lo, hi);
  }
  const int nt = gemm_threads(p * s.n, s.k, k);
  std::vector<uint8_t> xq(static_cast<size_t>(total));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < total; ++i) xq[size_t(i)] = uint8_t(quantize_one(x[i], q.scale, q.zero_point, 0, 255));
  // im2row: row (oh, ow) of A holds the (c, r, s) taps; outside the image the zero point.
  std::vector<uint8_t> a(size_t(p * lda));
  const int a_act = int(act);
  for (int64_t img = 0; img < s.n; ++img) {
    const uint8_t* xi = xq.data() + img * chw;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t row = 0; row < p; ++row) {
      const int64_t oh = row / s.wo, ow = row % s.wo;
      uint8_t* ar = a.data() + row * lda;
      int64_t col = 0;
      for (int64_t c = 0; c < s.c; ++c)
        for (int64_t r = 0; r < s.r; ++r) {
          const int64_t ih = oh * s.sh - s.pt + r * s.dh;
          for (int64_t t = 0; t < s.s; ++t, ++col) {
            const int64_t iw = ow * s.sw - s.pl + t * s.dw;
            const bool inside = ih >= 0 && ih < s.h && iw >= 0 && iw < s.w;
            ar[col] = inside ? xi[(c * s.h + ih) * s.w + iw] : uint8_t(q.zero_point);
          }
        }
      std::fill(ar + k, ar + lda, uint8_t(0));
    }
    float* yi = y + img * s.k * p;
    run_tasks(p, kg, a.data(), lda, w.data, s.k, nt,
              [&](int64_t i0, int64_t mc, int64_t j0, int64_t nc, const int32_t* tile) {
                for (int64_t j = 0; j < nc; ++j) {
                  float* yc = yi + (j0 + j) * p + i0;  // output channel j0 + j, pixels i0..
                  for (int64_t i = 0; i < mc; ++i)
                    yc[i] = dequant_one(tile[i * kQNr + j], q.zero_point, w.col_sums[j0 + j], q.scale,
                                        w.scales[j0 + j], bias ? bias[j0 + j] : 0.0f, a_act);
                }
              });
  }
}

}  // namespace quant
}  // namespace nnf
