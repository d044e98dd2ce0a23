// Packing of A and B micro-panels for the blocked GEMM (gemm.cpp).
//
// Packed layouts (what the micro-kernels read, see gemm_kernel.h):
//   A micro-panel: kc x mr, element (i, p) at dst[p*mr + i]
//   B micro-panel: kc x nr, element (p, j) at dst[p*nr + j]
// Sources are read in place through element strides (any sign); rows/columns past
// `rows`/`cols` (edge panels) are written as zeros so kernels never read garbage.
#pragma once
#include <cstdint>

#include "cpu/gemm/gemm_kernel.h"

namespace nnf {
namespace gemm {

// a: rows x kc block, element (i, p) at a[i*rs + p*cs]; rows <= mr.
// tpack: the variant's transposing pack for a full row-major panel (nullptr: portable).
void pack_a_panel(int mr, int64_t kc, int64_t rows, const float* a, int64_t rs, int64_t cs,
                  float* dst, TransposePack tpack = nullptr);

// b: kc x cols block, element (p, j) at b[p*rs + j*cs]; cols <= nr.
// tpack: the variant's transposing pack for a full column-major panel (nullptr: portable).
void pack_b_panel(int nr, int64_t kc, int64_t cols, const float* b, int64_t rs, int64_t cs,
                  float* dst, TransposePack tpack = nullptr);

// `panels` full B micro-panels of a row-major B (element (p, j) at b[p*rs + j]), panel q
// to dst + q*nr*kc: the same layout as pack_b_panel per panel, filled row by row so the
// reads stream along B's rows (a panel at a time reads one line from each of kc rows
// nc*4 bytes apart, ~2.5x slower at n = 2048).
void pack_b_rows(int nr, int64_t kc, int64_t panels, const float* b, int64_t rs, float* dst);

}  // namespace gemm
}  // namespace nnf
