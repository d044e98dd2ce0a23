// Direct conv kernels (direct_smallc / implicit_gemm forward, direct dW) for AVX2+FMA:
// 8-float vectors; forward tiles 4 channels x 3 vectors or 6 x 2 (12 accumulators +
// inputs + 1 weight = 16 ymm registers), dW tiles 3 channels x 4 taps.
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
  static V add(V a, V b) { return {_mm256_add_ps(a.v, b.v)}; }
  static V relu(V a) { return {_mm256_max_ps(_mm256_setzero_ps(), a.v)}; }  // 2nd operand on NaN: keeps NaN
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  float hsum() const {  // fixed order: (lo + hi) pairwise
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
  // Lanes [0, n) loaded, the rest 0 (0 < n <= N).
  static V load_first(const float* p, int n) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return {_mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane))};
  }
  // Lanes [0, n) only (0 < n < N): a masked store never touches memory past the row.
  void store_first(float* p, int n) const {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane), v);
  }
};

// Output channels per packed weight block: a multiple of every register tile height.
constexpr int kKBP = 12;
template <int NV>
constexpr int kb_for() { return NV == 3 ? 4 : 6; }

// dW tile: 3 channels x 4 taps (12 accumulators + 3 dy + 1 x = 16 ymm registers).
constexpr int kDwKB = 3, kDwTB = 4;

#include "cpu/conv/conv_direct_impl.h"
}  // namespace

DirectGeometry direct_geometry() { return {kKBP, V::N}; }
void direct_conv(const DirectArgs& a) { direct_impl(a); }
void direct_dw(const DirectDwArgs& a) { direct_dw_impl(a); }

NNF_REGISTER_DISPATCH(direct_geometry_stub, Slot::avx2, direct_geometry);
NNF_REGISTER_DISPATCH(direct_conv_stub, Slot::avx2, direct_conv);
NNF_REGISTER_DISPATCH(direct_dw_stub, Slot::avx2, direct_dw);

}  // namespace avx2
}  // namespace conv
}  // namespace nnf
