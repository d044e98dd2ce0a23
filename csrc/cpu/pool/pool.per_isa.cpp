// Pooling loops, compiled once per ISA (generic / avx2 / avx512 namespaces).
//
// Every output row is split into border columns (window clipped by padding or
// the right edge; scalar) and interior columns (whole window inside the row).
// Interior columns run one window tap at a time across the row, so the inner
// loop is a unit-work-per-lane loop the compiler vectorises; the column stride
// is a template constant for 1 and 2 (the common cases: a constant stride turns
// the strided loads into shuffles instead of gathers).
//
// Variants:
//   v1 max_pool_plane / avg_pool_plane: one tap at a time across an output row,
//      interior/border split, stride templated. Any window.
//   v2 max_pool_2x2s2_plane: 2x2 stride 2 unpadded windows in one pass (~2x v1 on
//      the CNN's 28x28 and 14x14 planes, whose short rows make v1's per-tap passes
//      overhead-bound). v1 still serves every other geometry and is tested on 2x2/s2
//      through ceil_mode and padding cases.
//   v3 max_pool_2x2_avx2.cpp: v2 by hand in AVX2 with masked row tails (the avx2 and
//      avx512 paths use it; generic uses v2).
// The max-pool backward stays memset + scatter per plane: a dense one-pass 2x2 block
// writer (auto-vectorised, then AVX2 by hand) measured no faster on 28x28 planes and
// 1.4x slower on 14x14 ones (the plane is L1-resident, so the scatter is cheap).
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "common/parallel_errors.h"
#include "cpu/pool/pool_isa.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace {

// Interior output columns [lo, hi): window [ow*sw - pw, ow*sw - pw + kw) inside [0, w).
inline void interior_columns(const PoolGeometry& g, int64_t& lo, int64_t& hi) {
  const int64_t last = g.w + g.pw - g.kw;  // largest interior window start + pw
  hi = last < 0 ? 0 : last / g.sw + 1;
  if (hi > g.wo) hi = g.wo;
  lo = (g.pw + g.sw - 1) / g.sw;
  if (lo > hi) lo = hi;
}

// Clipped window along one axis: [s, e) inside the input, [s0, e0) inside the
// padded input (the count_include_pad extent, torch's rule).
struct Span {
  int64_t s, e, s0, e0;
};

inline Span span(int64_t o, int64_t k, int64_t st, int64_t p, int64_t in) {
  Span r;
  r.s0 = o * st - p;
  r.e0 = r.s0 + k < in + p ? r.s0 + k : in + p;
  r.s = r.s0 > 0 ? r.s0 : 0;
  r.e = r.s0 + k < in ? r.s0 + k : in;
  return r;
}

// ---- max pool -------------------------------------------------------------------
// x (h, w) -> y, idx (ho, wo) for one plane. Ties keep the first maximum in
// row-major window order; a NaN replaces the running maximum (torch semantics).
template <int SW>
void max_pool_plane(const PoolGeometry& g, const float* x, float* y, int64_t* idx) {
  const int64_t sw = SW ? SW : g.sw, w = g.w;
  int64_t lo, hi;
  interior_columns(g, lo, hi);
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    const Span rs = span(oh, g.kh, g.sh, g.ph, g.h);
    float* yr = y + oh * g.wo;
    int64_t* ir = idx + oh * g.wo;
    auto border = [&](int64_t ow) {
      const Span cs = span(ow, g.kw, sw, g.pw, w);
      float best = -std::numeric_limits<float>::infinity();
      int64_t bi = rs.s * w + cs.s;
      for (int64_t ih = rs.s; ih < rs.e; ++ih)
        for (int64_t iw = cs.s; iw < cs.e; ++iw) {
          const float v = x[ih * w + iw];
          if (v > best || v != v) {
            best = v;
            bi = ih * w + iw;
          }
        }
      yr[ow] = best;
      ir[ow] = bi;
    };
    for (int64_t ow = 0; ow < lo; ++ow) border(ow);
    for (int64_t ow = hi; ow < g.wo; ++ow) border(ow);
    if (lo >= hi) continue;
    for (int64_t ow = lo; ow < hi; ++ow) {
      yr[ow] = -std::numeric_limits<float>::infinity();
      ir[ow] = rs.s * w + ow * sw - g.pw;
    }
    for (int64_t ih = rs.s; ih < rs.e; ++ih) {
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const int64_t base = ih * w - g.pw + kx;  // input index of tap kx for ow = 0
        const float* xr = x + base;
#pragma omp simd
        for (int64_t ow = lo; ow < hi; ++ow) {
          const float v = xr[ow * sw];
          const bool take = v > yr[ow] || v != v;
          yr[ow] = take ? v : yr[ow];
          ir[ow] = take ? base + ow * sw : ir[ow];
        }
      }
    }
  }
}

// v2: 2x2 windows, stride 2, no padding, every window whole (the CNN pool): all four
// taps in one pass per output row, no read-modify-write of y/idx between taps.
// Same tie and NaN rules as max_pool_plane (taps in row-major order).
void max_pool_2x2s2_plane(const PoolGeometry& g, const float* x, float* y, int64_t* idx) {
  const int64_t w = g.w, wo = g.wo;
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    const float* r0 = x + 2 * oh * w;
    const float* r1 = r0 + w;
    const int64_t base = 2 * oh * w;
    float* yr = y + oh * wo;
    int64_t* ir = idx + oh * wo;
#pragma omp simd
    for (int64_t ow = 0; ow < wo; ++ow) {
      const float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
      float m = a;
      int64_t off = 0;
      bool t = b > m || b != b;
      m = t ? b : m;
      off = t ? 1 : off;
      t = c > m || c != c;
      m = t ? c : m;
      off = t ? w : off;
      t = d > m || d != d;
      m = t ? d : m;
      off = t ? w + 1 : off;
      yr[ow] = m;
      ir[ow] = base + 2 * ow + off;
    }
  }
}

// ---- average pool -----------------------------------------------------------------
inline int64_t divisor(const PoolGeometry& g, const Span& r, const Span& c) {
  return g.count_include_pad ? (r.e0 - r.s0) * (c.e0 - c.s0) : (r.e - r.s) * (c.e - c.s);
}

template <int SW>
void avg_pool_plane(const PoolGeometry& g, const float* x, float* y) {
  const int64_t sw = SW ? SW : g.sw, w = g.w;
  int64_t lo, hi;
  interior_columns(g, lo, hi);
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    const Span rs = span(oh, g.kh, g.sh, g.ph, g.h);
    float* yr = y + oh * g.wo;
    auto border = [&](int64_t ow) {
      const Span cs = span(ow, g.kw, sw, g.pw, w);
      float sum = 0.0f;
      for (int64_t ih = rs.s; ih < rs.e; ++ih)
        for (int64_t iw = cs.s; iw < cs.e; ++iw) sum += x[ih * w + iw];
      const bool empty = rs.e <= rs.s || cs.e <= cs.s;
      yr[ow] = empty ? 0.0f : sum / float(divisor(g, rs, cs));
    };
    for (int64_t ow = 0; ow < lo; ++ow) border(ow);
    for (int64_t ow = hi; ow < g.wo; ++ow) border(ow);
    if (lo >= hi) continue;
    for (int64_t ow = lo; ow < hi; ++ow) yr[ow] = 0.0f;
    for (int64_t ih = rs.s; ih < rs.e; ++ih) {
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const float* xr = x + ih * w - g.pw + kx;
#pragma omp simd
        for (int64_t ow = lo; ow < hi; ++ow) yr[ow] += xr[ow * sw];
      }
    }
    // Interior windows are whole along w: both divisor rules give rows * kw.
    const int64_t rows = g.count_include_pad ? rs.e0 - rs.s0 : rs.e - rs.s;
    const float div = rs.e <= rs.s ? 0.0f : float(rows * g.kw);
    for (int64_t ow = lo; ow < hi; ++ow) yr[ow] = div == 0.0f ? 0.0f : yr[ow] / div;
  }
}

// dx (h, w) = sum over windows of dy / divisor; gs: scratch of wo floats.
template <int SW>
void avg_pool_backward_plane(const PoolGeometry& g, const float* dy, float* dx, float* gs) {
  const int64_t sw = SW ? SW : g.sw, w = g.w;
  int64_t lo, hi;
  interior_columns(g, lo, hi);
  std::memset(dx, 0, sizeof(float) * size_t(g.h * g.w));
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    const Span rs = span(oh, g.kh, g.sh, g.ph, g.h);
    if (rs.e <= rs.s) continue;
    const float* dyr = dy + oh * g.wo;
    auto border = [&](int64_t ow) {
      const Span cs = span(ow, g.kw, sw, g.pw, w);
      if (cs.e <= cs.s) return;
      const float gv = dyr[ow] / float(divisor(g, rs, cs));
      for (int64_t ih = rs.s; ih < rs.e; ++ih)
        for (int64_t iw = cs.s; iw < cs.e; ++iw) dx[ih * w + iw] += gv;
    };
    for (int64_t ow = 0; ow < lo; ++ow) border(ow);
    for (int64_t ow = hi; ow < g.wo; ++ow) border(ow);
    if (lo >= hi) continue;
    const float div = float((g.count_include_pad ? rs.e0 - rs.s0 : rs.e - rs.s) * g.kw);
    for (int64_t ow = lo; ow < hi; ++ow) gs[ow] = dyr[ow] / div;
    for (int64_t ih = rs.s; ih < rs.e; ++ih) {
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        float* dxr = dx + ih * w - g.pw + kx;
        // One tap: distinct ow write distinct elements (sw >= 1).
#pragma omp simd
        for (int64_t ow = lo; ow < hi; ++ow) dxr[ow * sw] += gs[ow];
      }
    }
  }
}

template <typename F>
void for_planes(int64_t planes, int nt, F&& f) {
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t p = 0; p < planes; ++p) f(p);
}

}  // namespace

void max_pool2d_planes(const PoolGeometry& g, const float* x, float* y, int64_t* idx, int nt) {
  const int64_t in = g.h * g.w, out = g.ho * g.wo;
  auto run = [&](auto plane) {
    for_planes(g.planes, nt, [&](int64_t p) { plane(g, x + p * in, y + p * out, idx + p * out); });
  };
  if (whole_2x2_windows(g)) run(max_pool_2x2s2_plane);
  else if (g.sw == 1) run(max_pool_plane<1>);
  else if (g.sw == 2) run(max_pool_plane<2>);
  else run(max_pool_plane<0>);
}

// Indices were validated by the caller; overlapping windows add in output order.
void max_pool2d_backward_planes(const PoolGeometry& g, const float* dy, const int64_t* idx,
                                float* dx, int nt) {
  const int64_t in = g.h * g.w, out = g.ho * g.wo;
  for_planes(g.planes, nt, [&](int64_t p) {
    float* d = dx + p * in;
    const float* gp = dy + p * out;
    const int64_t* ip = idx + p * out;
    std::memset(d, 0, sizeof(float) * size_t(in));
    for (int64_t i = 0; i < out; ++i) d[ip[i]] += gp[i];
  });
}

void avg_pool2d_planes(const PoolGeometry& g, const float* x, float* y, int nt) {
  const int64_t in = g.h * g.w, out = g.ho * g.wo;
  auto run = [&](auto plane) {
    for_planes(g.planes, nt, [&](int64_t p) { plane(g, x + p * in, y + p * out); });
  };
  if (g.sw == 1) run(avg_pool_plane<1>);
  else if (g.sw == 2) run(avg_pool_plane<2>);
  else run(avg_pool_plane<0>);
}

void avg_pool2d_backward_planes(const PoolGeometry& g, const float* dy, float* dx, int nt) {
  const int64_t in = g.h * g.w, out = g.ho * g.wo;
  ParallelErrors errors;  // the per-thread row may fail to allocate: not out of the region
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    std::vector<float> gs;  // one row of dy / divisor per thread
    errors.run([&] { gs.resize(size_t(g.wo > 0 ? g.wo : 1)); });
#pragma omp for schedule(static)
    for (int64_t p = 0; p < g.planes; ++p)
      errors.run([&] {
        if (g.sw == 1) avg_pool_backward_plane<1>(g, dy + p * out, dx + p * in, gs.data());
        else if (g.sw == 2) avg_pool_backward_plane<2>(g, dy + p * out, dx + p * in, gs.data());
        else avg_pool_backward_plane<0>(g, dy + p * out, dx + p * in, gs.data());
      });
  }
  errors.rethrow();
}

// y[p] = mean of x[p, :]; double accumulation (s can be large, e.g. 56*56).
void global_avg_pool2d_planes(int64_t planes, int64_t s, const float* x, float* y, int nt) {
  for_planes(planes, nt, [&](int64_t p) {
    const float* xp = x + p * s;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < s; ++i) sum += double(xp[i]);
    y[p] = float(sum / double(s));
  });
}

void global_avg_pool2d_backward_planes(int64_t planes, int64_t s, const float* dy, float* dx,
                                       int nt) {
  for_planes(planes, nt, [&](int64_t p) {
    const float gv = float(double(dy[p]) / double(s));
    float* d = dx + p * s;
#pragma omp simd
    for (int64_t i = 0; i < s; ++i) d[i] = gv;
  });
}

NNF_REGISTER_PER_ISA(pool::max_pool2d_planes_stub, max_pool2d_planes);
NNF_REGISTER_PER_ISA(pool::max_pool2d_backward_planes_stub, max_pool2d_backward_planes);
NNF_REGISTER_PER_ISA(pool::avg_pool2d_planes_stub, avg_pool2d_planes);
NNF_REGISTER_PER_ISA(pool::avg_pool2d_backward_planes_stub, avg_pool2d_backward_planes);
NNF_REGISTER_PER_ISA(pool::global_avg_pool2d_planes_stub, global_avg_pool2d_planes);
NNF_REGISTER_PER_ISA(pool::global_avg_pool2d_backward_planes_stub, global_avg_pool2d_backward_planes);
// Whole 2x2 / stride-2 windows: this file's one-pass kernel (v2) on the generic path only.
// The avx2 level registers the hand-written v3 (max_pool_2x2_avx2.cpp), and the avx512
// level falls back to it: GCC's AVX-512 code for v2 ran 6-11x slower than v3 on Zen 4
// (one thread, (64, 32, 28, 28) 2240 vs 391 us; (64, 64, 14, 14) 2502 vs 216 us).
#if NNF_ISA_LEVEL == 0
NNF_REGISTER_PER_ISA(pool::max_pool2d_2x2s2_stub, max_pool2d_planes);
#endif

}  // namespace NNF_ISA_NS
}  // namespace nnf
