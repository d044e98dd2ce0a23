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

#include "common/aligned_buffer.h"
#include "common/threads.h"
#include "cpu/gemm/activation_scalar.h"
#include "cpu/quant/qgemm_kernel.h"
#include "cpu/quant/quant.h"
#include "cpu/quant/quant_rows.h"
#include "cpu/quant/quant_rows_scalar.h"

namespace nnf {
namespace quant {

NNF_DEFINE_DISPATCH("quant", qgemm_panel_stub);

int64_t packed_groups(int64_t k) { return (k + 3) / 4; }
int64_t packed_size(int64_t n, int64_t k) { return (n + kQNr - 1) / kQNr * kQNr * 4 * packed_groups(k); }

void pack_weight(const int8_t* w, int64_t n, int64_t k, int64_t s0, int64_t s1, int8_t* packed,
                 int32_t* col_sums) {
  const int64_t kg = packed_groups(k);
  std::fill(packed, packed + packed_size(n, k), int8_t(0));
  std::fill(col_sums, col_sums + n, 0);
  const auto slot = [&](int64_t j, int64_t kk) { return (j / kQNr) * kg * kQNr * 4 + (kk / 4) * kQNr * 4 + (j % kQNr) * 4 + kk % 4; };
  // Walk the source along its unit stride (a (k, n) row-major B reads rows, not columns).
  const bool k_outer = s0 == 1 && s1 != 1;
  const int64_t outer = k_outer ? k : n, inner = k_outer ? n : k;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t t = 0; t < inner; ++t) {
      const int64_t j = k_outer ? t : o, kk = k_outer ? o : t;
      const int8_t v = w[j * s0 + kk * s1];
      packed[slot(j, kk)] = v;
      col_sums[j] += v;
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
  for (int64_t i = 0; i < m; ++i) {
    uint8_t* row = ap.data() + i * lda;
    if (sa1 == 1) std::copy(a + i * sa0, a + i * sa0 + k, row);
    else for (int64_t kk = 0; kk < k; ++kk) row[kk] = a[i * sa0 + kk * sa1];
  }
  run_tasks(m, kg, ap.data(), lda, packed.data(), n, gemm_threads(m, n, k),
            [&](int64_t i0, int64_t mc, int64_t j0, int64_t nc, const int32_t* tile) {
              for (int64_t i = 0; i < mc; ++i) std::copy(tile + i * kQNr, tile + i * kQNr + nc, c + (i0 + i) * n + j0);
            });
}

void qlinear(const float* x, int64_t m, int64_t sx0, int64_t sx1, const PackedWeight& w, const float* bias,
             Activation act, const InputQuant& iq, float* y) {
  const int64_t k = w.k, n = w.n, kg = packed_groups(k), lda = 4 * kg;
  if (m == 0 || n == 0) return;
  // Reused across calls (the hot path of a quantised layer); pad bytes are zeroed per row.
  static thread_local AlignedBuffer aq_buf, scale_buf, zp_buf;
  uint8_t* aq = static_cast<uint8_t*>(aq_buf.bytes(size_t(m * lda)));
  float* row_scale = scale_buf.floats(size_t(m));
  int32_t* row_zp = static_cast<int32_t*>(zp_buf.bytes(size_t(m) * sizeof(int32_t)));
  const int nt = gemm_threads(m, n, k);
  const RowRangeFn range = row_range_stub.get();
  const QuantizeRowFn quantize_row = quantize_row_stub.get();
  const DequantRowFn dequant_row = dequant_row_stub.get();
#pragma omp parallel num_threads(std::max(1, std::min<int>(nt, int(m))))
  {
    std::vector<float> gathered(size_t(sx1 == 1 ? 0 : k));  // a strided row, made contiguous
#pragma omp for schedule(static)
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * sx0;
      if (sx1 != 1) {
        for (int64_t kk = 0; kk < k; ++kk) gathered[size_t(kk)] = xi[kk * sx1];
        xi = gathered.data();
      }
      InputQuant q = iq;
      if (iq.dynamic) {
        float lo, hi;
        range(k, xi, &lo, &hi);
        q = range_quant(lo, hi);
      }
      row_scale[i] = q.scale;
      row_zp[i] = q.zero_point;
      quantize_row(k, xi, q.scale, q.zero_point, aq + i * lda);
      std::fill(aq + i * lda + k, aq + (i + 1) * lda, uint8_t(0));
    }
  }
  run_tasks(m, kg, aq, lda, w.data, n, nt,
            [&](int64_t i0, int64_t mc, int64_t j0, int64_t nc, const int32_t* tile) {
              for (int64_t i = 0; i < mc; ++i)
                dequant_row(nc, tile + i * kQNr, row_zp[i0 + i], row_scale[i0 + i],
                            w.col_sums + j0, w.scales + j0, bias ? bias + j0 : nullptr, int(act),
                            y + (i0 + i) * n + j0);
            });
}

void qconv2d(const conv::ConvShape& s, const float* x, const PackedWeight& w, const float* bias, Activation act,
             const InputQuant& iq, float* y) {
  const int64_t chw = s.c * s.h * s.w, total = s.n * chw, p = s.howo(), k = s.crs(), kg = packed_groups(k);
  const int64_t lda = 4 * kg;
  InputQuant q = iq;
  if (iq.dynamic) {
    float lo, hi;
    row_range_stub.get()(total, x, &lo, &hi);
    q = range_quant(lo, hi);
  }
  const int nt = gemm_threads(p * s.n, s.k, k);
  std::vector<uint8_t> xq(static_cast<size_t>(total));
  const QuantizeRowFn quantize_row = quantize_row_stub.get();
  const int64_t chunk = 4096;  // elements per task
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t c0 = 0; c0 < total; c0 += chunk)
    quantize_row(std::min(chunk, total - c0), x + c0, q.scale, q.zero_point, xq.data() + c0);
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
