// Packing of A and B micro-panels (layouts in gemm_pack.h).
//
// Fast paths by stride: A row-major (cs == 1) is a transpose of mr rows into
// p-major order; A column-major (rs == 1, i.e. a.T of a row-major array) is a
// straight copy of mr contiguous floats per p. B row-major (cs == 1) copies nr
// contiguous floats per row; B column-major (rs == 1, e.g. W.T) walks each column
// contiguously. Compile-time mr/nr let the compiler unroll and vectorise.
#include "cpu/gemm/gemm_pack.h"

#include <cstring>

namespace nnf {
namespace gemm {
namespace {

template <int MR>
void pack_a_full(int64_t kc, const float* a, int64_t rs, int64_t cs, float* dst) {
  if (cs == 1) {
    const float* row[MR];
    for (int i = 0; i < MR; ++i) row[i] = a + i * rs;
    for (int64_t p = 0; p < kc; ++p)
      for (int i = 0; i < MR; ++i) dst[p * MR + i] = row[i][p];
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
    for (int j = 0; j < NR; ++j) {
      const float* col = b + j * cs;
      for (int64_t p = 0; p < kc; ++p) dst[p * NR + j] = col[p];
    }
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

}  // namespace

void pack_a_panel(int mr, int64_t kc, int64_t rows, const float* a, int64_t rs, int64_t cs, float* dst) {
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

void pack_b_panel(int nr, int64_t kc, int64_t cols, const float* b, int64_t rs, int64_t cs, float* dst) {
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
