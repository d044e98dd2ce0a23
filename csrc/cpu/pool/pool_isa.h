// Raw-pointer pooling loops compiled once per ISA (pool.per_isa.cpp, which
// registers each in its stub below); the portable entry points in pool.h
// (pool_dispatch.cpp) resolve the stub once per call.
//
// Layout: NCHW, C-contiguous; a "plane" is one (n, c) image of H*W floats.
// Threads own whole planes and every plane is computed in one fixed order, so
// results (including the overlapping-window scatter in the backward passes) are
// bitwise identical for any thread count.
#pragma once
#include <cstdint>

#include "common/dispatch.h"

namespace nnf {

// One pooling problem; validated and sized by pool::make_geometry (pool.h).
struct PoolGeometry {
  int64_t planes;         // N * C
  int64_t h, w;           // input plane
  int64_t kh, kw;         // window
  int64_t sh, sw;         // stride
  int64_t ph, pw;         // padding (top = bottom, left = right)
  int64_t ho, wo;         // output plane
  bool count_include_pad; // avg pool divisor rule (torch's)
};

// 2x2 windows, stride 2, no padding, every window whole (the usual CNN pool): the
// geometry of the one-pass max-pool kernels (v2 per ISA, v3 hand-written AVX2).
inline bool whole_2x2_windows(const PoolGeometry& g) {
  return g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0 && 2 * g.ho <= g.h &&
         2 * g.wo <= g.w;  // ceil_mode may add a partial last window
}

#define NNF_POOL_KERNEL_DECLS                                                                    \
  void max_pool2d_planes(const PoolGeometry& g, const float* x, float* y, int64_t* idx, int nt); \
  void max_pool2d_backward_planes(const PoolGeometry& g, const float* dy, const int64_t* idx,    \
                                  float* dx, int nt);                                            \
  void avg_pool2d_planes(const PoolGeometry& g, const float* x, float* y, int nt);               \
  void avg_pool2d_backward_planes(const PoolGeometry& g, const float* dy, float* dx, int nt);    \
  void global_avg_pool2d_planes(int64_t planes, int64_t s, const float* x, float* y, int nt);    \
  void global_avg_pool2d_backward_planes(int64_t planes, int64_t s, const float* dy, float* dx,  \
                                         int nt);

namespace generic { NNF_POOL_KERNEL_DECLS }
namespace avx2 {
NNF_POOL_KERNEL_DECLS
// v3 (max_pool_2x2_avx2.cpp): whole_2x2_windows(g) and g.w < 2^30 (int32 offsets).
void max_pool2d_2x2s2_planes(const PoolGeometry& g, const float* x, float* y, int64_t* idx, int nt);
}  // namespace avx2
namespace avx512 { NNF_POOL_KERNEL_DECLS }

// One dispatch stub per kernel: defined in pool_dispatch.cpp, filled by pool.per_isa.cpp.
namespace pool {
NNF_DECLARE_DISPATCH(decltype(&generic::max_pool2d_planes), max_pool2d_planes_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::max_pool2d_backward_planes), max_pool2d_backward_planes_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::avg_pool2d_planes), avg_pool2d_planes_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::avg_pool2d_backward_planes), avg_pool2d_backward_planes_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::global_avg_pool2d_planes), global_avg_pool2d_planes_stub);
NNF_DECLARE_DISPATCH(decltype(&generic::global_avg_pool2d_backward_planes), global_avg_pool2d_backward_planes_stub);
// Whole 2x2 / stride-2 windows (whole_2x2_windows, w < 2^30): the one-pass v2 from
// pool.per_isa.cpp, or at the avx2 slot the hand-written v3 (max_pool_2x2_avx2.cpp).
NNF_DECLARE_DISPATCH(decltype(&generic::max_pool2d_planes), max_pool2d_2x2s2_stub);
}  // namespace pool

}  // namespace nnf
