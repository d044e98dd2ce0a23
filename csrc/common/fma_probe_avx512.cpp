// FMA throughput probe on 512-bit vectors (see fma_probe_impl.h).
// GCC 12 warns about its own _mm512_reduce_add_ps (an uninitialised __Y inside the header).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "common/cpu_peak.h"
#include "common/fma_probe_impl.h"

namespace nnf {
namespace avx512 {
namespace {
struct Ops {
  using V = __m512;
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V madd(V a, V m, V c) { return _mm512_fmadd_ps(a, m, c); }
  static float sum(V a) { return _mm512_reduce_add_ps(a); }
};
}  // namespace

double fma_probe_seconds(int64_t iters, float* sink) { return fma_probe_seconds_impl<Ops>(iters, sink); }

}  // namespace avx512
}  // namespace nnf
