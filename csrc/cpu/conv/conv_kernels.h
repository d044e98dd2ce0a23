// Per-ISA conv micro-kernels, each registered in its stub below; the drivers
// (conv_forward.cpp, conv_backward.cpp) resolve a stub once per call.
//
//   direct_smallc / implicit_gemm: conv_direct_{generic,avx2,avx512}.cpp (vector types)
//   depthwise:     conv_depthwise.per_isa.cpp (auto-vectorised, compiled once per ISA)
#pragma once
#include <cstdint>

#include "common/dispatch.h"

namespace nnf {
namespace conv {

// One work item of the direct kernel (direct_smallc and implicit_gemm): `nrows` output rows of one image and
// one group, every output channel of the group.
struct DirectArgs {
  // (cg, prows, wpad) zero-padded input rows, each row split into sw phases of wphase
  // floats: phase p holds padded columns p, p + sw, p + 2 sw, ... so that output columns
  // ow .. ow + N-1 of tap (r, s) read one contiguous vector at phase (s*dw) % sw, index
  // ow + (s*dw) / sw, for any stride. Output row i reads pad rows i*sh + r*dh.
  const float* pad;
  int64_t wpad;    // sw * wphase
  int64_t wphase;  // >= round_up(wo, vec_width) + (S-1)*dw / sw: whole vectors never overrun
  int64_t pplane;  // prows * wpad
  const float* wpack;  // (ceil(kg/KBP), cg, R, S, KBP), zero for k >= kg
  const float* bpack;  // (ceil(kg/KBP) * KBP) or null
  int64_t cg, kg, r, s, dh, dw, sh, sw;
  int64_t nrows, wo;
  float* y;    // element (k, i, ow) of this item at y[k*yk + i*wo + ow]
  int64_t yk;  // Ho * Wo
  bool relu;
};

// dW of one work item (one image, one group, a block of output rows) from the same
// padded rows as the forward: partial[k][t] += sum_{i, ow} dy[k][i][ow] * tap_t(i, ow)
// with taps t = (c, r, s). Register tile: KB channels x TB taps of vector partial sums
// over ow, reduced across lanes once per item. dy rows are zero past wo, so the
// whole-vector reads past wo add nothing (for finite inputs).
struct DirectDwArgs {
  const float* pad;
  int64_t wpad, wphase, pplane;
  const float* dy;  // (kg, nrows, ldy), ldy = nvec * vec_width, zero past wo
  int64_t dyk, ldy;
  int64_t cg, kg, r, s, dh, dw, sh, sw;
  int64_t nrows, nvec;
  int64_t wo;      // valid output columns; lanes past it read x as 0 (0 * inf would be NaN)
  float* partial;  // (kg, cg*R*S), accumulated into
};

struct DirectGeometry {
  int kb;         // output channels per packed weight block (wpack)
  int vec_width;  // floats per vector register
};

// One depthwise plane: y (ho, wo) = act(sum_rs w[r][s] * xpad[oh*sh + r*dh][ow*sw + s*dw] + b).
struct DepthwiseArgs {
  const float* pad;  // (hp, wp) zero-padded input plane
  int64_t wp;
  const float* w;    // (R, S)
  float bias;
  int64_t r, s, sh, sw, dh, dw, ho, wo;
  float* y;  // (ho, wo)
  bool relu;
};

#define NNF_CONV_KERNEL_DECLS                \
  DirectGeometry direct_geometry();          \
  void direct_conv(const DirectArgs& a);   \
  void direct_dw(const DirectDwArgs& a);   \
  void depthwise_plane(const DepthwiseArgs& a);

namespace generic { NNF_CONV_KERNEL_DECLS }
namespace avx2 { NNF_CONV_KERNEL_DECLS }
namespace avx512 { NNF_CONV_KERNEL_DECLS }

// One dispatch stub per kernel: defined in conv_dispatch.cpp. direct_geometry gives
// the vector width and weight packing of direct_conv / direct_dw, so a driver takes
// all three from one slot (same registrations, resolved together).
NNF_DECLARE_DISPATCH(decltype(&generic::direct_geometry), direct_geometry_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::direct_conv), direct_conv_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::direct_dw), direct_dw_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::depthwise_plane), depthwise_plane_stub);

}  // namespace conv
}  // namespace nnf
