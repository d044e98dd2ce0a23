// Padded, phase-split input rows for the direct kernels (see conv_pad.h).
#include "cpu/conv/conv_pad.h"

#include <algorithm>
#include <cstring>

namespace nnf {
namespace conv {

DirectLayout direct_layout(const ConvShape& s, int vec_width) {
  DirectLayout L;
  L.wphase = (s.wo + vec_width - 1) / vec_width * vec_width + (s.s - 1) * s.dw / s.sw;
  L.wpad = s.sw * L.wphase;
  const int64_t fit =
      (int64_t(16) * 1024 / std::max<int64_t>(1, s.cg() * L.wpad) - (s.r - 1) * s.dh) / s.sh;
  L.rows_per = std::max<int64_t>(1, std::min(s.ho, fit));
  L.rblocks = (s.ho + L.rows_per - 1) / L.rows_per;
  return L;
}

int64_t direct_pad_plane(const ConvShape& s, const DirectLayout& L, int64_t nrows) {
  return ((nrows - 1) * s.sh + (s.r - 1) * s.dh + 1) * L.wpad;
}

void fill_direct_pad(const ConvShape& s, const DirectLayout& L, const float* x, int64_t oh0,
                     int64_t nrows, float* pad) {
  const int64_t prows = (nrows - 1) * s.sh + (s.r - 1) * s.dh + 1, wpad = L.wpad;
  const int64_t pplane = prows * wpad, cg = s.cg();
  for (int64_t c = 0; c < cg; ++c) {
    const float* xc = x + c * s.hw();
    for (int64_t i = 0; i < prows; ++i) {
      float* row = pad + c * pplane + i * wpad;
      const int64_t ih = oh0 * s.sh - s.pt + i;
      if (ih < 0 || ih >= s.h) {
        std::fill(row, row + wpad, 0.0f);
        continue;
      }
      const float* xr = xc + ih * s.w;
      if (s.sw == 1) {
        const int64_t j0 = std::min(s.pl, wpad), j1 = std::max(j0, std::min(wpad, s.pl + s.w));
        std::fill(row, row + j0, 0.0f);
        std::memcpy(row + j0, xr + (j0 - s.pl), sizeof(float) * size_t(j1 - j0));
        std::fill(row + j1, row + wpad, 0.0f);
      } else {
        for (int64_t p = 0; p < s.sw; ++p) {
          float* ph = row + p * L.wphase;
          for (int64_t j = 0; j < L.wphase; ++j) {
            const int64_t iw = j * s.sw + p - s.pl;
            ph[j] = (iw >= 0 && iw < s.w) ? xr[iw] : 0.0f;
          }
        }
      }
    }
  }
}

}  // namespace conv
}  // namespace nnf
