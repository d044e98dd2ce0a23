// FMA throughput probe on 256-bit vectors (see fma_probe_impl.h).
#include <immintrin.h>

#include "common/cpu_peak.h"
#include "common/fma_probe_impl.h"

namespace nnf {
namespace avx2 {
namespace {
struct Ops {
  using V = __m256;
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V madd(V a, V m, V c) { return _mm256_fmadd_ps(a, m, c); }
  static float sum(V a) {
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, a);
    float s = 0.f;
    for (float v : lanes) s += v;
    return s;
  }
};
}  // namespace

double fma_probe_seconds(int64_t iters, float* sink) { return fma_probe_seconds_impl<Ops>(iters, sink); }

}  // namespace avx2
}  // namespace nnf
