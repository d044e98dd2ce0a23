// Scalar activations (generic kernel, and the k == 0 / alpha == 0 path of the frame).
// Reference definitions the SIMD versions approximate:
//   relu(x)      = max(x, 0), NaN for NaN x (as torch; every version below keeps NaN)
//   gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
//   gelu_erf(x)  = 0.5 x (1 + erf(x / sqrt 2))
// Evaluated in double, in forms without cancellation for x << 0:
//   0.5(1 + tanh z) = 1 / (1 + exp(-2z)),  1 + erf(u) = erfc(-u).
#pragma once
#include <cmath>

namespace nnf {
namespace gemm {

inline float activate_scalar(float x, int act) {
  switch (act) {
    case 1: return x < 0.0f ? 0.0f : x;  // NaN passes through (torch)
    case 2: {
      const double xd = x, z = 0.7978845608028654 * (xd + 0.044715 * xd * xd * xd);
      return float(xd / (1.0 + std::exp(-2.0 * z)));
    }
    case 3: return float(0.5 * double(x) * std::erfc(-double(x) * 0.70710678118654752));
    default: return x;
  }
}

}  // namespace gemm
}  // namespace nnf
