// direct_smallc reference path (no ISA flags): a portable 8-float "vector" that the
// compiler maps onto the baseline SIMD (SSE2 on x86-64); 4 output channels per block.
#include <cmath>

#include <vector>

#include "cpu/conv/conv_kernels.h"

namespace nnf {
namespace conv {
namespace generic {
namespace {

struct V {
  static constexpr int N = 8;
  float v[N];
  static V zero() {
    V r;
    for (int i = 0; i < N; ++i) r.v[i] = 0.0f;
    return r;
  }
  static V bcast(const float* p) {
    V r;
    for (int i = 0; i < N; ++i) r.v[i] = *p;
    return r;
  }
  static V load(const float* p) {
    V r;
    for (int i = 0; i < N; ++i) r.v[i] = p[i];
    return r;
  }
  // Separate multiply and add (no FMA contraction without -mfma): the reference
  // rounding differs from the FMA paths by at most one rounding per term.
  static V fma(V a, V b, V c) {
    V r;
    for (int i = 0; i < N; ++i) r.v[i] = a.v[i] * b.v[i] + c.v[i];
    return r;
  }
  static V relu(V a) {
    V r;
    for (int i = 0; i < N; ++i) r.v[i] = a.v[i] > 0.0f ? a.v[i] : 0.0f;
    return r;
  }
  void store(float* p) const {
    for (int i = 0; i < N; ++i) p[i] = v[i];
  }
};

#include "cpu/conv/conv_direct_impl.h"

constexpr int kKB = 4;
}  // namespace

DirectGeometry direct_geometry() { return {kKB, V::N}; }
void direct_smallc(const DirectArgs& a) { direct_smallc_impl<kKB>(a); }

}  // namespace generic
}  // namespace conv
}  // namespace nnf
