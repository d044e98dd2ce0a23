// Depthwise convolution (groups == C == K): one (ho, wo) plane per call, from a
// zero-padded copy of its input plane. Vectorised along wo by the compiler (unit
// stride when stride_w == 1). Order per output: bias, then (r, s) ascending.
#include "cpu/conv/conv_kernels.h"

namespace nnf {
namespace conv {
namespace NNF_ISA_NS {

void depthwise_plane(const DepthwiseArgs& a) {
  for (int64_t oh = 0; oh < a.ho; ++oh) {
    float* __restrict__ yrow = a.y + oh * a.wo;
    for (int64_t ow = 0; ow < a.wo; ++ow) yrow[ow] = a.bias;
    for (int64_t r = 0; r < a.r; ++r) {
      const float* prow = a.pad + (oh * a.sh + r * a.dh) * a.wp;
      for (int64_t q = 0; q < a.s; ++q) {
        const float wv = a.w[r * a.s + q];
        const float* __restrict__ in = prow + q * a.dw;
        if (a.sw == 1) {
#pragma omp simd
          for (int64_t ow = 0; ow < a.wo; ++ow) yrow[ow] += wv * in[ow];
        } else {
          for (int64_t ow = 0; ow < a.wo; ++ow) yrow[ow] += wv * in[ow * a.sw];
        }
      }
    }
    if (a.relu) {
#pragma omp simd
      for (int64_t ow = 0; ow < a.wo; ++ow) yrow[ow] = yrow[ow] > 0.0f ? yrow[ow] : 0.0f;
    }
  }
}

NNF_REGISTER_PER_ISA(depthwise_plane_stub, depthwise_plane);

}  // namespace NNF_ISA_NS
}  // namespace conv
}  // namespace nnf
