// 2-D pooling (max, average, global average) on NCHW float32: the portable
// entry points that bindings call. make_geometry validates the window against
// the input (PyTorch's rules) and throws std::invalid_argument with the shapes;
// max_pool2d_backward validates every index before it scatters anything.
#pragma once
#include <cstdint>
#include <string>

#include "cpu/pool/pool_isa.h"

namespace nnf {
namespace pool {

// Output size of one axis, PyTorch's rule: floor((in + 2p - k) / s) + 1, or the
// ceiling with ceil_mode, minus one when the last window would start in the
// right padding. Assumes validated arguments (k >= 1, s >= 1, in + 2p >= k).
int64_t output_size(int64_t in, int64_t k, int64_t s, int64_t p, bool ceil_mode);

// Validates (kernel >= 1, stride >= 1, 0 <= padding <= kernel / 2, padded input
// at least one window, sizes that fit int64) and fills every field. `what`
// names the op in error messages.
PoolGeometry make_geometry(const char* what, int64_t n, int64_t c, int64_t h, int64_t w,
                           int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                           bool ceil_mode, bool count_include_pad);

// x (planes, h, w) -> y (planes, ho, wo), idx (planes, ho, wo): flat index ih*w+iw
// of the maximum in its input plane (first maximum in row-major window order;
// NaN wins, as in torch).
void max_pool2d(const PoolGeometry& g, const float* x, float* y, int64_t* idx);
// dx (planes, h, w) = scatter-add of dy at idx. Throws naming the first index
// outside [0, h*w) before writing dx.
void max_pool2d_backward(const PoolGeometry& g, const float* dy, const int64_t* idx, float* dx);

// Window mean; the divisor follows torch (count_include_pad: window clipped to
// the padded input; otherwise the number of real elements).
void avg_pool2d(const PoolGeometry& g, const float* x, float* y);
void avg_pool2d_backward(const PoolGeometry& g, const float* dy, float* dx);

// x (planes, s) -> y (planes,) plane means; backward spreads dy / s.
void global_avg_pool2d(int64_t planes, int64_t s, const float* x, float* y);
void global_avg_pool2d_backward(int64_t planes, int64_t s, const float* dy, float* dx);

}  // namespace pool
}  // namespace nnf
