// conv2d backward through the GEMM view, per group g (Cg = C/G, Kg = K/G):
//   db[k]        = sum_{n, p} dy[n, k, p]                      (double, n then p order)
//   dW_g (Kg x CgRS) = sum_n dy[n,g] (Kg x P) @ col[n,g]^T (P x CgRS)
//   dcol (CgRS x T)  = W_g^T (CgRS x Kg) @ dy[n,g][:, tile];  dx[n,g] = col2im(dcol)
// For 1x1 stride-1 unpadded convolutions col is x itself (no im2col / col2im).
//
// Determinism: dx work items are whole (image, group) planes (col2im of neighbouring
// tiles adds into the same pixels), processed tile by tile in order by one thread.
// dW is a reduction over images: the (image, tile) items are cut into a fixed number
// of chunks that depends on the shape only, each chunk accumulates its own partial
// dW in item order, and the partials are summed in chunk order. So 1 and 2 threads
// give bitwise identical dx, dW and db.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/parallel_errors.h"
#include "common/threads.h"
#include "cpu/conv/conv.h"
#include "cpu/conv/conv_im2col.h"
#include "cpu/conv/conv_dispatch.h"
#include "cpu/conv/conv_kernels.h"
#include "cpu/conv/conv_pad.h"
#include "cpu/gemm/gemm.h"

namespace nnf {
namespace conv {
namespace {

// Chunk count for a dW reduction over `items` work items, from the shape only (never
// from the thread count): up to 16, partials bounded to ~64 MiB in all.
int64_t dw_chunks(int64_t items, int64_t dwlen) {
  const int64_t cap = std::max<int64_t>(1, (int64_t(16) << 20) / dwlen);
  return std::min<int64_t>({16, items, cap});
}

// Runs body(chunk, gemm_threads) over chunks: in parallel when there are enough.
template <class Body>
void for_chunks(int64_t chunks, int nt, Body body) {
  if (nt > 1 && chunks >= nt) {
    ParallelErrors errors;  // each thread grows its scratch: bad_alloc must not leave the region
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int64_t ch = 0; ch < chunks; ++ch) errors.run([&] { body(ch, 1); });
    errors.rethrow();
  } else {
    for (int64_t ch = 0; ch < chunks; ++ch) body(ch, nt);
  }
}

// 1x1, stride 1, no padding: col is the image itself.
bool is_one_by_one(const ConvShape& s) {
  return s.r == 1 && s.s == 1 && s.sh == 1 && s.sw == 1 && s.pt == 0 && s.pb == 0 && s.pl == 0 &&
         s.pr == 0;
}

double gemm_flops(const ConvShape& s) {
  return 2.0 * double(s.n) * double(s.k) * double(s.crs()) * double(s.howo());
}

void backward_bias(const ConvShape& s, const float* dy, float* db) {
  const int64_t P = s.howo();
  const int nt = threads_for(double(s.n) * double(s.k) * double(P));
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int64_t k = 0; k < s.k; ++k) {
    double acc = 0.0;
    for (int64_t n = 0; n < s.n; ++n) {
      const float* p = dy + (n * s.k + k) * P;
      double part = 0.0;
#pragma omp simd reduction(+ : part)
      for (int64_t i = 0; i < P; ++i) part += double(p[i]);
      acc += part;
    }
    db[k] = float(acc);
  }
}

// For stride 1, dx is a forward convolution of dy with the spatially flipped, transposed
// filters wf (C, K/G, R, S), wf[g*Cg + c][k][r][q] = w[g*Kg + k][c][R-1-r][S-1-q], and
// padding (R-1)*dh - pt etc. (a "full" convolution): it then runs on the fast forward
// kernels (direct / implicit GEMM, depthwise) instead of GEMM + col2im. Padding larger
// than the kernel extent would make that padding negative: those keep col2im.
// With 1 or 2 input channels per group (outside depthwise) that forward has 1-2 output
// channels: its register tile degenerates and GEMM + col2im measured 3x faster
// (N64 C1 28x28 K32: 35 vs 11 GFLOP/s on one core; C=3 ties at ~30).
bool dx_as_forward(const ConvShape& s) {
  const int64_t er = (s.r - 1) * s.dh, es = (s.s - 1) * s.dw;
  const bool depthwise = s.groups > 1 && s.cg() == 1 && s.kg() == 1;
  return s.sh == 1 && s.sw == 1 && s.pt <= er && s.pb <= er && s.pl <= es && s.pr <= es &&
         (s.cg() >= 3 || depthwise);
}

void backward_input_as_forward(const ConvShape& s, const float* dy, const float* w, float* dx) {
  ConvShape t;
  t.n = s.n;
  t.c = s.k;
  t.h = s.ho;
  t.w = s.wo;
  t.k = s.c;
  t.r = s.r;
  t.s = s.s;
  t.pt = (s.r - 1) * s.dh - s.pt;
  t.pb = (s.r - 1) * s.dh - s.pb;
  t.pl = (s.s - 1) * s.dw - s.pl;
  t.pr = (s.s - 1) * s.dw - s.pr;
  t.dh = s.dh;
  t.dw = s.dw;
  t.groups = s.groups;
  finalize_shape(t);  // t.ho == s.h, t.wo == s.w
  const int64_t G = s.groups, kg = s.kg(), cg = s.cg(), rs = s.r * s.s;
  float* wf = thread_scratch(3).floats(size_t(s.c * kg * rs));
  for (int64_t g = 0; g < G; ++g)
    for (int64_t k = 0; k < kg; ++k)
      for (int64_t c = 0; c < cg; ++c) {
        const float* src = w + ((g * kg + k) * cg + c) * rs;
        float* dst = wf + ((g * cg + c) * kg + k) * rs;
        for (int64_t i = 0; i < rs; ++i) dst[i] = src[rs - 1 - i];
      }
  forward(t, dy, wf, nullptr, false, dx);
}

void backward_input(const ConvShape& s, const float* dy, const float* w, float* dx) {
  if (!is_one_by_one(s) && dx_as_forward(s)) {
    backward_input_as_forward(s, dy, w, dx);
    return;
  }
  const int64_t G = s.groups, kg = s.kg(), cg = s.cg(), crs = s.crs(), P = s.howo();
  const bool one = is_one_by_one(s);
  const int64_t T = tile_columns(s), tiles = ceil_div(P, T);
  const int nt = threads_for(gemm_flops(s), 2.0e6);
  const int64_t items = s.n * G;
  auto body = [&](int64_t it, int gemm_threads) {
    const int64_t g = it % G, n = it / G;
    const float* dyg = dy + (n * s.k + g * kg) * P;
    float* dxg = dx + (n * s.c + g * cg) * s.hw();
    const MatRef wt{w + g * kg * crs, 1, crs};  // W_g^T: (CgRS x Kg)
    if (one) {
      sgemm(cg, P, kg, 1.0f, wt, MatRef{dyg, P, 1}, 0.0f, MutMatRef{dxg, s.hw(), 1},
            GemmEpilogue{}, gemm_threads);
      return;
    }
    // Accumulate into a zero-padded image (no bounds logic per element), then copy
    // its interior out; rows no output reads (stride > kernel extent) stay 0.
    PaddedRows pr;
    pr.row0 = 0;
    pr.prows = (s.ho - 1) * s.sh + (s.r - 1) * s.dh + 1;
    pr.wp = s.w + s.pl + s.pr;
    pr.data = thread_scratch(0).floats(size_t(padded_rows_floats(s, s.ho)));
    std::fill(pr.data, pr.data + cg * pr.prows * pr.wp, 0.0f);
    float* dcol = thread_scratch(1).floats(size_t(crs * T));
    for (int64_t tile = 0; tile < tiles; ++tile) {
      const int64_t p0 = tile * T, t = std::min(T, P - p0);
      sgemm(crs, t, kg, 1.0f, wt, MatRef{dyg + p0, P, 1}, 0.0f, MutMatRef{dcol, t, 1},
            GemmEpilogue{}, gemm_threads);
      col2im_tile_padded(s, dcol, t, p0, t, pr);
    }
    for (int64_t c = 0; c < cg; ++c)
      for (int64_t ih = 0; ih < s.h; ++ih) {
        float* dst = dxg + (c * s.h + ih) * s.w;
        const int64_t prow = ih + s.pt;
        if (prow < pr.prows)
          std::memcpy(dst, pr.data + (c * pr.prows + prow) * pr.wp + s.pl, sizeof(float) * size_t(s.w));
        else
          std::fill(dst, dst + s.w, 0.0f);
      }
  };
  if (nt > 1 && items >= nt) {
    ParallelErrors errors;  // each thread grows its scratch: bad_alloc must not leave the region
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int64_t it = 0; it < items; ++it) errors.run([&] { body(it, 1); });
    errors.rethrow();
  } else {
    for (int64_t it = 0; it < items; ++it) body(it, nt);
  }
}

// dW with the direct kernel (conv_direct_*.cpp): items are (image, row block) with
// the forward's padded rows; each chunk of items sums into its own (Kg x CgRS)
// partial, chunks are added in order.
void backward_weight_direct(const ConvShape& s, const float* dy, const float* x, float* dw) {
  // Resolved together, once (see forward_direct).
  const DirectGeometry geo = direct_geometry_stub.get()();
  const auto direct_dw = direct_dw_stub.get();
  const int64_t G = s.groups, kg = s.kg(), cg = s.cg(), crs = s.crs(), P = s.howo();
  const DirectLayout L = direct_layout(s, geo.vec_width);
  const int64_t nvec = ceil_div(s.wo, geo.vec_width), ldy = nvec * geo.vec_width;
  const int64_t items = s.n * L.rblocks, dwlen = kg * crs;
  const int64_t chunks = dw_chunks(items, dwlen);
  const int nt = threads_for(gemm_flops(s), 2.0e6);
  float* partial = thread_scratch(2).floats(size_t(chunks * dwlen));
  for (int64_t g = 0; g < G; ++g) {
    std::fill(partial, partial + chunks * dwlen, 0.0f);
    for_chunks(chunks, nt, [&](int64_t ch, int) {
      const int64_t lo = items * ch / chunks, hi = items * (ch + 1) / chunks;
      for (int64_t it = lo; it < hi; ++it) {
        const int64_t n = it / L.rblocks, oh0 = (it % L.rblocks) * L.rows_per;
        const int64_t nrows = std::min(L.rows_per, s.ho - oh0);
        const int64_t pplane = direct_pad_plane(s, L, nrows);
        float* pad = thread_scratch(0).floats(size_t(cg * pplane));
        fill_direct_pad(s, L, x + (n * s.c + g * cg) * s.hw(), oh0, nrows, pad);
        // dy rows of the item, zero-padded to whole vectors.
        float* dyb = thread_scratch(1).floats(size_t(kg * nrows * ldy));
        for (int64_t k = 0; k < kg; ++k)
          for (int64_t i = 0; i < nrows; ++i) {
            float* dst = dyb + (k * nrows + i) * ldy;
            std::memcpy(dst, dy + (n * s.k + g * kg + k) * P + (oh0 + i) * s.wo,
                        sizeof(float) * size_t(s.wo));
            std::fill(dst + s.wo, dst + ldy, 0.0f);
          }
        DirectDwArgs a;
        a.pad = pad;
        a.wpad = L.wpad;
        a.wphase = L.wphase;
        a.pplane = pplane;
        a.dy = dyb;
        a.dyk = nrows * ldy;
        a.ldy = ldy;
        a.cg = cg;
        a.kg = kg;
        a.r = s.r;
        a.s = s.s;
        a.dh = s.dh;
        a.dw = s.dw;
        a.sh = s.sh;
        a.sw = s.sw;
        a.nrows = nrows;
        a.nvec = nvec;
        a.wo = s.wo;
        a.partial = partial + ch * dwlen;
        direct_dw(a);
      }
    });
    float* dwg = dw + g * dwlen;
    const int rt = threads_for(double(chunks) * double(dwlen));
#pragma omp parallel for num_threads(rt) schedule(static) if (rt > 1)
    for (int64_t i = 0; i < dwlen; ++i) {
      float v = partial[i];
      for (int64_t ch = 1; ch < chunks; ++ch) v += partial[ch * dwlen + i];
      dwg[i] = v;
    }
  }
}

// dW_g^T (CgRS x Kg) = sum over (image, tile) of col (CgRS x t) @ dy_tile^T (t x Kg):
// computed transposed so that the large operand (col, or x itself for 1x1) is read in
// place row-major and only dy^T (t x Kg) gets packed; the partials are transposed back
// in the final fixed-order reduction.
void backward_weight_gemm(const ConvShape& s, const float* dy, const float* x, float* dw) {
  const int64_t G = s.groups, kg = s.kg(), cg = s.cg(), crs = s.crs(), P = s.howo();
  const bool one = is_one_by_one(s);
  const int64_t T = tile_columns(s), tiles = ceil_div(P, T);
  const int64_t items = s.n * tiles, dwlen = kg * crs;
  if (items == 0) {
    std::fill(dw, dw + s.k * crs, 0.0f);
    return;
  }
  // Chunk count from the shape only (never from the thread count): up to 16, with
  // partials bounded to ~64 MiB in all.
  const int64_t chunks = dw_chunks(items, dwlen);
  const int nt = threads_for(gemm_flops(s), 2.0e6);
  float* partial = thread_scratch(2).floats(size_t(chunks * dwlen));
  for (int64_t g = 0; g < G; ++g) {
    float* dwg = dw + g * dwlen;
    auto chunk_body = [&](int64_t ch, int gemm_threads) {
      float* acc = partial + ch * dwlen;  // (CgRS x Kg)
      const int64_t lo = items * ch / chunks, hi = items * (ch + 1) / chunks;
      float* col = one ? nullptr : thread_scratch(1).floats(size_t(crs * T));
      for (int64_t it = lo; it < hi; ++it) {
        const int64_t tile = it % tiles, n = it / tiles;
        const int64_t p0 = tile * T, t = std::min(T, P - p0);
        const float* xg = x + (n * s.c + g * cg) * s.hw();
        const MatRef b{dy + (n * s.k + g * kg) * P + p0, 1, P};  // dy^T: (t x Kg)
        MatRef a;                                                 // col: (CgRS x t)
        if (one) {
          a = MatRef{xg + p0, s.hw(), 1};
        } else {
          const int64_t oh_first = p0 / s.wo, oh_last = (p0 + t - 1) / s.wo;
          float* buf =
              thread_scratch(0).floats(size_t(padded_rows_floats(s, oh_last - oh_first + 1)));
          im2col_tile_padded(s, pad_rows(s, xg, oh_first, oh_last, buf), p0, t, col, t);
          a = MatRef{col, t, 1};
        }
        sgemm(crs, kg, t, 1.0f, a, b, it == lo ? 0.0f : 1.0f, MutMatRef{acc, kg, 1},
              GemmEpilogue{}, gemm_threads);
      }
    };
    if (nt > 1 && chunks >= nt) {
      ParallelErrors errors;  // each thread grows its scratch: bad_alloc must not leave the region
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
      for (int64_t ch = 0; ch < chunks; ++ch) errors.run([&] { chunk_body(ch, 1); });
      errors.rethrow();
    } else {
      for (int64_t ch = 0; ch < chunks; ++ch) chunk_body(ch, nt);
    }
    // dW_g[k][i] = sum over chunks, in chunk order, of partial[ch][i][k].
    const int rt = threads_for(double(chunks) * double(dwlen));
#pragma omp parallel for num_threads(rt) schedule(static) if (rt > 1)
    for (int64_t k = 0; k < kg; ++k) {
      float* dst = dwg + k * crs;
      for (int64_t i = 0; i < crs; ++i) dst[i] = partial[i * kg + k];
      for (int64_t ch = 1; ch < chunks; ++ch) {
        const float* src = partial + ch * dwlen + k;
        for (int64_t i = 0; i < crs; ++i) dst[i] += src[i * kg];
      }
    }
  }
}

void backward_weight(const ConvShape& s, const float* dy, const float* x, float* dw) {
  if (s.n > 0 && dw_algo(s) == Algo::direct_smallc) backward_weight_direct(s, dy, x, dw);
  else backward_weight_gemm(s, dy, x, dw);
}

}  // namespace

void backward(const ConvShape& s, const float* dy, const float* x, const float* w, float* dx,
              float* dw, float* db) {
  if (db) {
    if (s.n == 0) std::fill(db, db + s.k, 0.0f);
    else backward_bias(s, dy, db);
  }
  if (dw) backward_weight(s, dy, x, dw);
  if (dx && s.n > 0) backward_input(s, dy, w, dx);
}

}  // namespace conv
}  // namespace nnf
