// Direct conv kernels, reference path (no ISA flags): a portable 8-float "vector" the
// compiler maps onto the baseline SIMD (SSE2 on x86-64); 4-channel forward tiles, 2 x 4
// dW tiles.
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
  // Lanes [0, n) loaded, the rest 0 (0 < n <= N).
  static V load_first(const float* p, int n) {
    V r;
    for (int i = 0; i < N; ++i) r.v[i] = i < n ? p[i] : 0.0f;
    return r;
  }
  // Separate multiply and add (no FMA contraction without -mfma): the reference
  // rounding differs from the FMA paths by at most one rounding per term.
  static V fma(V a, V b, V c) {
    V r;
    for (int i = 0; i < N; ++i) r.v[i] = a.v[i] * b.v[i] + c.v[i];
    return r;
  }
  static V add(V a, V b) {
    V r;
    for (int i = 0; i < N; ++i) r.v[i] = a.v[i] + b.v[i];
    return r;
  }
  static V relu(V a) {
    V r;
    for (int i = 0; i < N; ++i) r.v[i] = a.v[i] < 0.0f ? 0.0f : a.v[i];  // NaN passes
    return r;
  }
  void store(float* p) const {
    for (int i = 0; i < N; ++i) p[i] = v[i];
  }
  float hsum() const {  // fixed order: halves pairwise, like the SIMD paths
    float s4[4];
    for (int i = 0; i < 4; ++i) s4[i] = v[i] + v[i + 4];
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
  }
  void store_first(float* p, int n) const {
    for (int i = 0; i < n; ++i) p[i] = v[i];
  }
};

// Output channels per packed weight block: a multiple of every register tile height.
constexpr int kKBP = 4;
template <int NV>
constexpr int kb_for() { return 4; }

// dW tile: 2 channels x 4 taps.
constexpr int kDwKB = 2, kDwTB = 4;

#include "cpu/conv/conv_direct_impl.h"
}  // namespace

DirectGeometry direct_geometry() { return {kKBP, V::N}; }
void direct_conv(const DirectArgs& a) { direct_impl(a); }
void direct_dw(const DirectDwArgs& a) { direct_dw_impl(a); }

NNF_REGISTER_DISPATCH(direct_geometry_stub, Slot::generic, direct_geometry);
NNF_REGISTER_DISPATCH(direct_conv_stub, Slot::generic, direct_conv);
NNF_REGISTER_DISPATCH(direct_dw_stub, Slot::generic, direct_dw);

}  // namespace generic
}  // namespace conv
}  // namespace nnf
