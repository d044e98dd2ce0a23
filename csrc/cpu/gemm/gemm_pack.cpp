// Packing of A and B micro-panels (layouts in gemm_pack.h).
//
// Fast paths by stride: A row-major (cs == 1) is a transpose of mr rows into
// p-major order; A column-major (rs == 1, i.e. a.T of a row-major array) is a
// straight copy of mr contiguous floats per p. B row-major (cs == 1) copies nr
// contiguous floats per row; B column-major (rs == 1, e.g. W.T) is the same
// transpose. Compile-time mr/nr let the compiler unroll and vectorise.
#include "cpu/gemm/gemm_pack.h"

#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>  // baseline on x86-64, so allowed in this portable file
#endif

namespace nnf {
namespace gemm {
namespace {

// dst[p*W + j] = src[j*ss + p] for j < W, p < kc: the transposing copy behind packing
// row-major A and column-major B. 4 x 4 blocks go through SSE registers (4 loads,
// 8 shuffles, 4 stores per 16 floats, ~4x the scalar loop); leftover rows of W % 4
// and the kc % 4 tail are scalar.
template <int W>
void transpose_pack(int64_t kc, const float* src, int64_t ss, float* dst) {
  int j0 = 0;
#if defined(__SSE2__)
  const int64_t kc4 = kc & ~int64_t(3);
  for (; j0 + 4 <= W; j0 += 4) {
    const float* r0 = src + (j0 + 0) * ss;
    const float* r1 = src + (j0 + 1) * ss;
    const float* r2 = src + (j0 + 2) * ss;
    const float* r3 = src + (j0 + 3) * ss;
    for (int64_t p = 0; p < kc4; p += 4) {
      __m128 x0 = _mm_loadu_ps(r0 + p), x1 = _mm_loadu_ps(r1 + p);
      __m128 x2 = _mm_loadu_ps(r2 + p), x3 = _mm_loadu_ps(r3 + p);
      _MM_TRANSPOSE4_PS(x0, x1, x2, x3);
      _mm_storeu_ps(dst + (p + 0) * W + j0, x0);
      _mm_storeu_ps(dst + (p + 1) * W + j0, x1);
      _mm_storeu_ps(dst + (p + 2) * W + j0, x2);
      _mm_storeu_ps(dst + (p + 3) * W + j0, x3);
    }
    for (int64_t p = kc4; p < kc; ++p)
      for (int q = 0; q < 4; ++q) dst[p * W + j0 + q] = src[(j0 + q) * ss + p];
  }
#endif
  for (; j0 < W; ++j0) {
    const float* r = src + j0 * ss;
    for (int64_t p = 0; p < kc; ++p) dst[p * W + j0] = r[p];
  }
}

template <int MR>
void pack_a_full(int64_t kc, const float* a, int64_t rs, int64_t cs, float* dst) {
  if (cs == 1) {
    transpose_pack<MR>(kc, a, rs, dst);
  } else if (rs == 1) {
    for (int64_t p = 0; p < kc; ++p) std::memcpy(dst + p * MR, a + p * cs, MR * sizeof(float));
  } else {
    for (int64_t p = 0; p < kc; ++p)
      for (int i = 0; i < MR; ++i) dst[p * MR + i] = a[i * rs + p * cs];
  }
}

template <int NR>
void pack_b_full(int64_t kc, const float* b, int64_t rs, int64_t cs, float* dst) {
  if (cs == 1) {
    for (int64_t p = 0; p < kc; ++p) std::memcpy(dst + p * NR, b + p * rs, NR * sizeof(float));
  } else if (rs == 1) {
    transpose_pack<NR>(kc, b, cs, dst);
  } else {
    for (int64_t p = 0; p < kc; ++p)
      for (int j = 0; j < NR; ++j) dst[p * NR + j] = b[p * rs + j * cs];
  }
}

// Edge panels (fewer than mr rows / nr columns): zero-padded, rare, so plain loops.
void pack_a_edge(int mr, int64_t kc, int64_t rows, const float* a, int64_t rs, int64_t cs, float* dst) {
  for (int64_t p = 0; p < kc; ++p) {
    float* d = dst + p * mr;
    int64_t i = 0;
    for (; i < rows; ++i) d[i] = a[i * rs + p * cs];
    for (; i < mr; ++i) d[i] = 0.0f;
  }
}

void pack_b_edge(int nr, int64_t kc, int64_t cols, const float* b, int64_t rs, int64_t cs, float* dst) {
  for (int64_t p = 0; p < kc; ++p) {
    float* d = dst + p * nr;
    int64_t j = 0;
    for (; j < cols; ++j) d[j] = b[p * rs + j * cs];
    for (; j < nr; ++j) d[j] = 0.0f;
  }
}

template <int NR>
void pack_b_rows_t(int64_t kc, int64_t panels, const float* b, int64_t rs, float* dst) {
  for (int64_t p = 0; p < kc; ++p)
    for (int64_t q = 0; q < panels; ++q)
      std::memcpy(dst + q * NR * kc + p * NR, b + p * rs + q * NR, NR * sizeof(float));
}

}  // namespace

void pack_b_rows(int nr, int64_t kc, int64_t panels, const float* b, int64_t rs, float* dst) {
  switch (nr) {
    case 8: return pack_b_rows_t<8>(kc, panels, b, rs, dst);
    case 16: return pack_b_rows_t<16>(kc, panels, b, rs, dst);
    case 32: return pack_b_rows_t<32>(kc, panels, b, rs, dst);
    default:
      for (int64_t q = 0; q < panels; ++q)
        pack_b_panel(nr, kc, nr, b + q * nr, rs, 1, dst + q * nr * kc);
  }
}

void pack_a_panel(int mr, int64_t kc, int64_t rows, const float* a, int64_t rs, int64_t cs, float* dst,
                  TransposePack tpack) {
  if (rows == mr && cs == 1 && tpack) return tpack(kc, a, rs, dst);
  if (rows == mr) {
    switch (mr) {
      case 4: return pack_a_full<4>(kc, a, rs, cs, dst);
      case 6: return pack_a_full<6>(kc, a, rs, cs, dst);
      case 8: return pack_a_full<8>(kc, a, rs, cs, dst);
      case 14: return pack_a_full<14>(kc, a, rs, cs, dst);
      case 16: return pack_a_full<16>(kc, a, rs, cs, dst);
      default: break;
    }
  }
  pack_a_edge(mr, kc, rows, a, rs, cs, dst);
}

void pack_b_panel(int nr, int64_t kc, int64_t cols, const float* b, int64_t rs, int64_t cs, float* dst,
                  TransposePack tpack) {
  if (cols == nr && rs == 1 && tpack) return tpack(kc, b, cs, dst);
  if (cols == nr) {
    switch (nr) {
      case 8: return pack_b_full<8>(kc, b, rs, cs, dst);
      case 16: return pack_b_full<16>(kc, b, rs, cs, dst);
      case 32: return pack_b_full<32>(kc, b, rs, cs, dst);
      case 64: return pack_b_full<64>(kc, b, rs, cs, dst);
      default: break;
    }
  }
  pack_b_edge(nr, kc, cols, b, rs, cs, dst);
}

}  // namespace gemm
}  // namespace nnf
