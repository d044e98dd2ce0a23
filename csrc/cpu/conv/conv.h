// CPU 2-D convolution (NCHW, float32): shapes, algorithm choice, forward and backward.
//
//   x (N, C, H, W)   w (K, C/groups, R, S)   bias (K,)   y (N, K, Ho, Wo)
//   Ho = (H + pad_top + pad_bottom - dil_h*(R-1) - 1) / stride_h + 1   (same for Wo)
//
// Every array here is C-contiguous (the Python wrapper copies strided views first).
// Each output element (y, dx, dw, db) is produced by one fixed sequence of float
// operations that does not depend on the thread count, so results are bitwise equal
// for any number of threads.
#pragma once
#include <cstdint>
#include <string>

namespace nnf {
namespace conv {

struct ConvShape {
  int64_t n = 0, c = 0, h = 0, w = 0;  // input
  int64_t k = 0, r = 0, s = 0;         // filters (K, C/groups, R, S)
  int64_t sh = 1, sw = 1;              // stride
  int64_t pt = 0, pb = 0, pl = 0, pr = 0;  // padding top, bottom, left, right
  int64_t dh = 1, dw = 1;              // dilation
  int64_t groups = 1;
  int64_t ho = 0, wo = 0;              // filled by finalize_shape

  int64_t cg() const { return c / groups; }
  int64_t kg() const { return k / groups; }
  int64_t crs() const { return cg() * r * s; }  // GEMM reduction length per group
  int64_t hw() const { return h * w; }
  int64_t howo() const { return ho * wo; }
  std::string describe() const;  // "x (N, C, H, W), w (K, Cg, R, S), stride ..., groups g"
};

enum class Algo : int {
  direct_smallc = 0,  // C/groups <= 4, stride_w 1: register-blocked direct kernel
  depthwise = 1,      // groups == C == K
  gemm_1x1 = 2,       // 1x1, stride 1, no padding: GEMM on the image itself
  im2col_tiles = 3,   // anything: im2col in bounded tiles + sgemm
  implicit_gemm = 4,  // stride_w 1, more channels: the direct kernel over C*R*S taps
};
const char* algo_name(Algo a);
// Throws std::invalid_argument for an unknown name.
Algo parse_algo(const std::string& name);

// Forces a forward algorithm wherever it applies to the shape (others keep the
// automatic choice): "auto" or an algorithm name. For benchmarks and cross-checks.
void set_forced_algo(const std::string& name);
std::string get_forced_algo();

// Validates strides, dilations, paddings, channels and groups, computes ho/wo and
// checks every size product for overflow. Throws std::invalid_argument naming the
// shapes. Must run before any other function here.
void finalize_shape(ConvShape& s);

// Forward algorithm for a (finalized) shape; backward always uses GEMM (+ im2col tiles).
// Takes the forced algorithm (set_forced_algo) when it applies to the shape.
Algo choose_algo(const ConvShape& s);

// dW algorithm: direct_smallc (the direct kernel, vector partial sums over output
// columns) or im2col_tiles (GEMMs over im2col tiles). Follows a forced forward
// algorithm (direct kernels -> direct, GEMM kernels -> GEMM) so both get cross-checked.
Algo dw_algo(const ConvShape& s);

// y = act(conv(x, w) + bias); bias may be null.
void forward(const ConvShape& s, const float* x, const float* w, const float* bias, bool relu,
             float* y);

// Gradients from dy (N, K, Ho, Wo), the gradient w.r.t. the pre-activation output.
// Any of dx (N, C, H, W), dw (K, Cg, R, S), db (K,) may be null (not computed).
void backward(const ConvShape& s, const float* dy, const float* x, const float* w, float* dx,
              float* dw, float* db);

}  // namespace conv
}  // namespace nnf
