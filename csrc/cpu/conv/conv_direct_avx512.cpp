// Direct conv kernels (direct_smallc / implicit_gemm forward, direct dW) for AVX-512:
// 16-float vectors; forward tiles 8 channels x 3 vectors or 12 x 2 (24 accumulators of
// the 32 zmm registers), dW tiles 4 channels x 6 taps. Written on an AVX2-only
// host (its block logic checked there on the generic vector type); since run and tested
// natively on an AVX-512 host by tests/test_conv.py's isa fixture.
// GCC 12 warns on _mm512_undefined_ps inside its own intrinsics headers.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <vector>

#include "cpu/conv/conv_kernels.h"

namespace nnf {
namespace conv {
namespace avx512 {
namespace {

struct V {
  static constexpr int N = 16;
  __m512 v;
  static V zero() { return {_mm512_setzero_ps()}; }
  static V bcast(const float* p) { return {_mm512_set1_ps(*p)}; }
  static V load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static V fma(V a, V b, V c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
  static V add(V a, V b) { return {_mm512_add_ps(a.v, b.v)}; }
  static V relu(V a) { return {_mm512_max_ps(_mm512_setzero_ps(), a.v)}; }  // 2nd operand on NaN: keeps NaN
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  float hsum() const {  // fixed order: halves pairwise
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
  // Lanes [0, n) loaded, the rest 0 (0 < n <= N).
  static V load_first(const float* p, int n) {
    return {_mm512_maskz_loadu_ps(__mmask16((1u << n) - 1u), p)};
  }
  // Lanes [0, n) only (0 < n < N): a masked store never touches memory past the row.
  void store_first(float* p, int n) const {
    _mm512_mask_storeu_ps(p, __mmask16((1u << n) - 1u), v);
  }
};

// Output channels per packed weight block: a multiple of every register tile height.
constexpr int kKBP = 24;
template <int NV>
constexpr int kb_for() { return NV == 3 ? 8 : 12; }

// dW tile: 4 channels x 6 taps (24 accumulators + 4 dy + 1 x of 32 zmm registers).
constexpr int kDwKB = 4, kDwTB = 6;

#include "cpu/conv/conv_direct_impl.h"
}  // namespace

DirectGeometry direct_geometry() { return {kKBP, V::N}; }
void direct_conv(const DirectArgs& a) { direct_impl(a); }
void direct_dw(const DirectDwArgs& a) { direct_dw_impl(a); }

NNF_REGISTER_DISPATCH(direct_geometry_stub, Slot::avx512, direct_geometry);
NNF_REGISTER_DISPATCH(direct_conv_stub, Slot::avx512, direct_conv);
NNF_REGISTER_DISPATCH(direct_dw_stub, Slot::avx512, direct_dw);

}  // namespace avx512
}  // namespace conv
}  // namespace nnf
