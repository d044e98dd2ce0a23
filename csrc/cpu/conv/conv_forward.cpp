// conv2d forward drivers: work splitting, padding copies and GEMM calls around the
// per-ISA kernels. One job each:
//   gemm_1x1      y[n,g] (Kg x HW) = W_g (Kg x Cg) @ x[n,g] (Cg x HW), column tiles, no copy
//   im2col_tiles  y[n,g][:, tile] = W_g (Kg x CgRS) @ col (CgRS x T), col built per tile
//   direct_smallc register-blocked direct kernel over padded input rows (conv_direct_*.cpp)
//   implicit_gemm the same kernel for many channels (C*R*S taps read in place)
//   depthwise     one padded plane per (n, c) (conv_depthwise.per_isa.cpp)
// Work items are (image, group, tile/row block); each output element has exactly one
// writer and its arithmetic does not depend on the split, so any thread count gives
// bitwise identical y.
#include <omp.h>

#include <algorithm>
#include <cstring>

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

double forward_flops(const ConvShape& s) {
  return 2.0 * double(s.n) * double(s.k) * double(s.crs()) * double(s.howo());
}

// Runs body(item) for item in [0, items): items in parallel with single-threaded
// GEMMs inside when there are enough of them, else one by one with `nt` GEMM threads.
template <class Body>
void for_items(int64_t items, int nt, Body body) {
  if (nt > 1 && items >= nt) {
    ParallelErrors errors;  // each thread grows its scratch: bad_alloc must not leave the region
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int64_t it = 0; it < items; ++it) errors.run([&] { body(it, 1); });
    errors.rethrow();
  } else {
    for (int64_t it = 0; it < items; ++it) body(it, nt);
  }
}

GemmEpilogue epilogue(const float* bias, bool relu) {
  GemmEpilogue ep;
  if (bias) {
    ep.bias_mode = BiasMode::per_row;
    ep.bias = bias;
  }
  ep.activation = relu ? Activation::relu : Activation::none;
  return ep;
}

void forward_gemm(const ConvShape& s, const float* x, const float* w, const float* bias,
                  bool relu, float* y, bool one_by_one) {
  const int64_t G = s.groups, kg = s.kg(), cg = s.cg(), crs = s.crs(), P = s.howo();
  const int64_t T = tile_columns(s), tiles = ceil_div(P, T);
  const int nt = threads_for(forward_flops(s), 2.0e6);
  for_items(s.n * G * tiles, nt, [&](int64_t it, int gemm_threads) {
    const int64_t tile = it % tiles, ng = it / tiles, g = ng % G, n = ng / G;
    const int64_t p0 = tile * T, t = std::min(T, P - p0);
    const float* xg = x + (n * s.c + g * cg) * s.hw();
    float* yg = y + (n * s.k + g * kg) * P + p0;
    const GemmEpilogue ep = epilogue(bias ? bias + g * kg : nullptr, relu);
    const MatRef a{w + g * kg * crs, crs, 1};
    if (one_by_one) {
      sgemm(kg, t, cg, 1.0f, a, MatRef{xg + p0, s.hw(), 1}, 0.0f, MutMatRef{yg, P, 1}, ep,
            gemm_threads);
    } else {
      const int64_t oh_first = p0 / s.wo, oh_last = (p0 + t - 1) / s.wo;
      float* buf = thread_scratch(0).floats(size_t(padded_rows_floats(s, oh_last - oh_first + 1)));
      const PaddedRows pr = pad_rows(s, xg, oh_first, oh_last, buf);
      float* col = thread_scratch(1).floats(size_t(crs * T));
      im2col_tile_padded(s, pr, p0, t, col, t);
      sgemm(kg, t, crs, 1.0f, a, MatRef{col, t, 1}, 0.0f, MutMatRef{yg, P, 1}, ep, gemm_threads);
    }
  });
}

void forward_direct(const ConvShape& s, const float* x, const float* w, const float* bias,
                    bool relu, float* y) {
  // Geometry and kernel resolved together, once: a set_isa() from another thread
  // mid-call must not pair one slot's packing with another slot's kernel.
  const DirectGeometry geo = direct_geometry_stub.get()();
  const auto direct_conv = direct_conv_stub.get();
  const int64_t KB = geo.kb, G = s.groups, kg = s.kg(), cg = s.cg(), crs = s.crs();
  const int64_t kblocks = ceil_div(kg, KB);
  // Weights regrouped as (g, kblock, c, r, s, KB) so a tap's KB weights are adjacent;
  // bias zero-padded to whole blocks. Small (K * C*R*S floats), owned by this thread.
  const int64_t wpack_len = G * kblocks * crs * KB, bpack_len = G * kblocks * KB;
  float* wpack = thread_scratch(2).floats(size_t(wpack_len + bpack_len));
  float* bpack = bias ? wpack + wpack_len : nullptr;
  std::fill(wpack, wpack + wpack_len + bpack_len, 0.0f);
  for (int64_t g = 0; g < G; ++g)
    for (int64_t k = 0; k < kg; ++k) {
      float* dst = wpack + ((g * kblocks + k / KB) * crs) * KB + k % KB;
      const float* src = w + (g * kg + k) * crs;
      for (int64_t i = 0; i < crs; ++i) dst[i * KB] = src[i];
      if (bias) bpack[g * kblocks * KB + k] = bias[g * kg + k];
    }

  const int nt = threads_for(forward_flops(s), 2.0e6);
  const int64_t planes = s.n * G;
  DirectLayout L = direct_layout(s, geo.vec_width);
  // Enough row blocks to share between threads (any split gives the same y).
  if (planes * L.rblocks < 2 * nt) {
    L.rows_per = std::max<int64_t>(1, ceil_div(s.ho, ceil_div(2 * nt, planes)));
    L.rblocks = ceil_div(s.ho, L.rows_per);
  }
  const int64_t rows_per = L.rows_per, rblocks = L.rblocks, wpad = L.wpad, wphase = L.wphase;
  for_items(planes * rblocks, nt, [&](int64_t it, int) {
    const int64_t rb = it % rblocks, ng = it / rblocks, g = ng % G, n = ng / G;
    const int64_t oh0 = rb * rows_per, nrows = std::min(rows_per, s.ho - oh0);
    const int64_t pplane = direct_pad_plane(s, L, nrows);
    float* pad = thread_scratch(0).floats(size_t(cg * pplane));
    fill_direct_pad(s, L, x + (n * s.c + g * cg) * s.hw(), oh0, nrows, pad);
    DirectArgs a;
    a.pad = pad;
    a.wpad = wpad;
    a.wphase = wphase;
    a.sw = s.sw;
    a.pplane = pplane;
    a.wpack = wpack + g * kblocks * crs * KB;
    a.bpack = bias ? bpack + g * kblocks * KB : nullptr;
    a.cg = cg;
    a.kg = kg;
    a.r = s.r;
    a.s = s.s;
    a.dh = s.dh;
    a.dw = s.dw;
    a.sh = s.sh;
    a.nrows = nrows;
    a.wo = s.wo;
    a.y = y + (n * s.k + g * kg) * s.howo() + oh0 * s.wo;
    a.yk = s.howo();
    a.relu = relu;
    direct_conv(a);
  });
}

void forward_depthwise(const ConvShape& s, const float* x, const float* w, const float* bias,
                       bool relu, float* y) {
  const int64_t hp = s.h + s.pt + s.pb, wp = s.w + s.pl + s.pr;
  const int nt = threads_for(forward_flops(s), 2.0e6);
  const auto depthwise_plane = depthwise_plane_stub.get();
  for_items(s.n * s.c, nt, [&](int64_t it, int) {
    const int64_t c = it % s.c;
    float* pad = thread_scratch(0).floats(size_t(hp * wp));
    std::fill(pad, pad + hp * wp, 0.0f);
    const float* xc = x + it * s.hw();
    for (int64_t ih = 0; ih < s.h; ++ih)
      std::memcpy(pad + (ih + s.pt) * wp + s.pl, xc + ih * s.w, sizeof(float) * size_t(s.w));
    DepthwiseArgs a;
    a.pad = pad;
    a.wp = wp;
    a.w = w + c * s.r * s.s;
    a.bias = bias ? bias[c] : 0.0f;
    a.r = s.r;
    a.s = s.s;
    a.sh = s.sh;
    a.sw = s.sw;
    a.dh = s.dh;
    a.dw = s.dw;
    a.ho = s.ho;
    a.wo = s.wo;
    a.y = y + it * s.howo();
    a.relu = relu;
    depthwise_plane(a);
  });
}

}  // namespace

void forward(const ConvShape& s, const float* x, const float* w, const float* bias, bool relu,
             float* y) {
  if (s.n == 0) return;
  switch (choose_algo(s)) {
    case Algo::direct_smallc:
    case Algo::implicit_gemm: forward_direct(s, x, w, bias, relu, y); break;
    case Algo::depthwise: forward_depthwise(s, x, w, bias, relu, y); break;
    case Algo::gemm_1x1: forward_gemm(s, x, w, bias, relu, y, true); break;
    default: forward_gemm(s, x, w, bias, relu, y, false); break;
  }
}

}  // namespace conv
}  // namespace nnf
