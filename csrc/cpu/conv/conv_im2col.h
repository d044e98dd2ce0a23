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

// Zero-padded copy of the input rows that output rows [oh_first, oh_last] read:
// buf (cg, prows, wp), wp = W + pl + pr, buffer row i = padded row oh_first*sh + i.
// Lets im2col / col2im copy whole segments with no bounds logic per element.
struct PaddedRows {
  float* data;
  int64_t row0, prows, wp;
};
int64_t padded_rows_floats(const ConvShape& s, int64_t out_rows);
PaddedRows pad_rows(const ConvShape& s, const float* x, int64_t oh_first, int64_t oh_last,
                    float* buf);
// Same tile as im2col_tile, read from padded rows that cover its output rows.
void im2col_tile_padded(const ConvShape& s, const PaddedRows& pr, int64_t p0, int64_t t,
                        float* col, int64_t ldc);
// Inverse scatter into a padded accumulator that covers the tile's output rows.
void col2im_tile_padded(const ConvShape& s, const float* col, int64_t ldc, int64_t p0, int64_t t,
                        const PaddedRows& pr);

// Output positions per tile: col tile <= ~256 KiB (stays in L2 between im2col and
// GEMM), a multiple of 16 (the widest GEMM micro-tile), at most Ho*Wo.
int64_t tile_columns(const ConvShape& s);

}  // namespace conv
}  // namespace nnf
