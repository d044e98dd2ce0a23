// im2col / col2im on column tiles: the GEMM view of a convolution, one bounded
// tile of output positions at a time (never the whole image or batch).
//
//   col (Cg*R*S, T), row-major with leading dimension ldc: col[(c*R + r)*S + s][t] =
//     x[c][oh*sh - pt + r*dh][ow*sw - pl + s*dw]  (0 outside the image), where output
//     position p0 + t = oh*Wo + ow.
#pragma once
#include <cstdint>

#include "cpu/conv/conv.h"

namespace nnf {
namespace conv {

// x: one group of one image, (Cg, H, W) contiguous.
void im2col_tile(const ConvShape& s, const float* x, int64_t p0, int64_t t, float* col,
                 int64_t ldc);

// dx[c][ih][iw] += col[...][t] for every (c, r, s, t) that maps inside the image; the
// inverse scatter of im2col_tile. Accumulates in a fixed order (rows, then t).
void col2im_tile(const ConvShape& s, const float* col, int64_t ldc, int64_t p0, int64_t t,
                 float* dx);

// Output positions per tile: col tile <= ~256 KiB (stays in L2 between im2col and
// GEMM), a multiple of 16 (the widest GEMM micro-tile), at most Ho*Wo.
int64_t tile_columns(const ConvShape& s);

}  // namespace conv
}  // namespace nnf
