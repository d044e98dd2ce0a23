// Zero-padded, phase-split input rows for the direct kernels (forward direct_smallc /
// implicit_gemm and the direct dW), and the row blocking that bounds them.
//
//   pad (cg, prows, wpad): row i = input row oh0*sh - pt + i; each row holds sw phases
//   of wphase floats, phase p index j = input column j*sw + p - pl (0 outside).
#pragma once
#include <cstdint>

#include "cpu/conv/conv.h"

namespace nnf {
namespace conv {

struct DirectLayout {
  int64_t wphase;    // round_up(wo, vec_width) + (S-1)*dw/sw: whole vectors never overrun
  int64_t wpad;      // sw * wphase
  int64_t rows_per;  // output rows per block: its padded rows stay within ~64 KiB (measured
                     // best of 32/64/128 KiB: L1 + weights block, N64 C32 14x14 70 vs 66/69)
  int64_t rblocks;   // ceil(ho / rows_per)
};

// Depends on the shape and vector width only (never on the thread count).
DirectLayout direct_layout(const ConvShape& s, int vec_width);
// Floats per channel plane of a block of `nrows` output rows.
int64_t direct_pad_plane(const ConvShape& s, const DirectLayout& L, int64_t nrows);
// x: one image and group, (cg, H, W).
void fill_direct_pad(const ConvShape& s, const DirectLayout& L, const float* x, int64_t oh0,
                     int64_t nrows, float* pad);

}  // namespace conv
}  // namespace nnf
