// direct_smallc for AVX2+FMA: 8-float vectors, 4 output channels x up to 3 vectors
// (12 accumulators + 3 inputs + 1 weight = 16 ymm registers).
#include <immintrin.h>

#include <vector>

#include "cpu/conv/conv_kernels.h"

namespace nnf {
namespace conv {
namespace avx2 {
namespace {

struct V {
  static constexpr int N = 8;
  __m256 v;
  static V zero() { return {_mm256_setzero_ps()}; }
  static V bcast(const float* p) { return {_mm256_broadcast_ss(p)}; }
  static V load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static V fma(V a, V b, V c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  static V relu(V a) { return {_mm256_max_ps(a.v, _mm256_setzero_ps())}; }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
};

#include "cpu/conv/conv_direct_impl.h"

constexpr int kKB = 4;
}  // namespace

DirectGeometry direct_geometry() { return {kKB, V::N}; }
void direct_smallc(const DirectArgs& a) { direct_smallc_impl<kKB>(a); }

}  // namespace avx2
}  // namespace conv
}  // namespace nnf
