// im2col / col2im over tiles of output positions (see conv_im2col.h).
#include "cpu/conv/conv_im2col.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace nnf {
namespace conv {

namespace {
// Output columns ow in [0, wo) whose input column ow*sw + off lies in [0, w):
// returns [lo, hi) (possibly empty).
inline void valid_cols(int64_t off, int64_t sw, int64_t w, int64_t wo, int64_t& lo, int64_t& hi) {
  // ow*sw + off >= 0  <=>  ow >= ceil(-off / sw)
  lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
  // ow*sw + off <= w - 1  <=>  ow <= floor((w - 1 - off) / sw)
  hi = (w - 1 - off) < 0 ? 0 : (w - 1 - off) / sw + 1;
  lo = std::min(lo, wo);
  hi = std::max(lo, std::min(hi, wo));
}
}  // namespace

int64_t tile_columns(const ConvShape& s) {
  constexpr int64_t kTileFloats = 128 * 1024;
  int64_t t = kTileFloats / s.crs();
  t = std::max<int64_t>(16, t / 16 * 16);
  t = std::min<int64_t>(t, 4096);
  return std::min(t, s.howo());
}

void im2col_tile(const ConvShape& s, const float* x, int64_t p0, int64_t t, float* col,
                 int64_t ldc) {
  const int64_t cg = s.cg();
  for (int64_t c = 0; c < cg; ++c) {
    const float* xc = x + c * s.h * s.w;
    for (int64_t r = 0; r < s.r; ++r) {
      for (int64_t q = 0; q < s.s; ++q) {
        float* row = col + ((c * s.r + r) * s.s + q) * ldc;
        const int64_t coff = q * s.dw - s.pl;
        int64_t lo, hi;
        valid_cols(coff, s.sw, s.w, s.wo, lo, hi);
        // Walk output rows that intersect [p0, p0 + t).
        int64_t p = p0, i = 0;
        while (i < t) {
          const int64_t oh = p / s.wo, ow0 = p % s.wo;
          const int64_t ow1 = std::min(s.wo, ow0 + (t - i));
          float* dst = row + i - ow0;  // dst[ow] for ow in [ow0, ow1)
          const int64_t ih = oh * s.sh - s.pt + r * s.dh;
          if (ih < 0 || ih >= s.h) {
            std::memset(dst + ow0, 0, sizeof(float) * size_t(ow1 - ow0));
          } else {
            const float* src = xc + ih * s.w + coff;  // src[ow*sw] = x[ih][ow*sw + coff]
            const int64_t a = std::max(ow0, lo), b = std::min(ow1, hi);
            if (a >= b) {
              std::memset(dst + ow0, 0, sizeof(float) * size_t(ow1 - ow0));
            } else {
              if (a > ow0) std::memset(dst + ow0, 0, sizeof(float) * size_t(a - ow0));
              if (s.sw == 1) {
                std::memcpy(dst + a, src + a, sizeof(float) * size_t(b - a));
              } else {
                for (int64_t ow = a; ow < b; ++ow) dst[ow] = src[ow * s.sw];
              }
              if (ow1 > b) std::memset(dst + b, 0, sizeof(float) * size_t(ow1 - b));
            }
          }
          i += ow1 - ow0;
          p += ow1 - ow0;
        }
      }
    }
  }
}

void col2im_tile(const ConvShape& s, const float* col, int64_t ldc, int64_t p0, int64_t t,
                 float* dx) {
  const int64_t cg = s.cg();
  for (int64_t c = 0; c < cg; ++c) {
    float* xc = dx + c * s.h * s.w;
    for (int64_t r = 0; r < s.r; ++r) {
      for (int64_t q = 0; q < s.s; ++q) {
        const float* row = col + ((c * s.r + r) * s.s + q) * ldc;
        const int64_t coff = q * s.dw - s.pl;
        int64_t lo, hi;
        valid_cols(coff, s.sw, s.w, s.wo, lo, hi);
        int64_t p = p0, i = 0;
        while (i < t) {
          const int64_t oh = p / s.wo, ow0 = p % s.wo;
          const int64_t ow1 = std::min(s.wo, ow0 + (t - i));
          const float* src = row + i - ow0;
          const int64_t ih = oh * s.sh - s.pt + r * s.dh;
          if (ih >= 0 && ih < s.h) {
            float* dst = xc + ih * s.w + coff;
            const int64_t a = std::max(ow0, lo), b = std::min(ow1, hi);
            if (s.sw == 1) {
#pragma omp simd
              for (int64_t ow = a; ow < b; ++ow) dst[ow] += src[ow];
            } else {
              for (int64_t ow = a; ow < b; ++ow) dst[ow * s.sw] += src[ow];
            }
          }
          i += ow1 - ow0;
          p += ow1 - ow0;
        }
      }
    }
  }
}

int64_t padded_rows_floats(const ConvShape& s, int64_t out_rows) {
  return s.cg() * ((out_rows - 1) * s.sh + (s.r - 1) * s.dh + 1) * (s.w + s.pl + s.pr);
}

PaddedRows pad_rows(const ConvShape& s, const float* x, int64_t oh_first, int64_t oh_last,
                    float* buf) {
  PaddedRows pr;
  pr.data = buf;
  pr.row0 = oh_first * s.sh;
  pr.prows = (oh_last - oh_first) * s.sh + (s.r - 1) * s.dh + 1;
  pr.wp = s.w + s.pl + s.pr;
  const int64_t cg = s.cg();
  for (int64_t c = 0; c < cg; ++c) {
    const float* xc = x + c * s.h * s.w;
    float* bc = buf + c * pr.prows * pr.wp;
    for (int64_t i = 0; i < pr.prows; ++i) {
      float* row = bc + i * pr.wp;
      const int64_t ih = pr.row0 + i - s.pt;
      if (ih < 0 || ih >= s.h) {
        std::fill(row, row + pr.wp, 0.0f);
        continue;
      }
      std::fill(row, row + s.pl, 0.0f);
      std::memcpy(row + s.pl, xc + ih * s.w, sizeof(float) * size_t(s.w));
      std::fill(row + s.pl + s.w, row + pr.wp, 0.0f);
    }
  }
  return pr;
}

namespace {
// The output rows a tile [p0, p0 + t) crosses, as (source offset in the padded rows
// relative to tap (0, 0), destination column in the tile, length). Computed once per
// tile so the per-(c, r, s) loops do no division.
struct Segment {
  int64_t src, dst, len;
};
int64_t tile_segments(const ConvShape& s, const PaddedRows& pr, int64_t p0, int64_t t,
                      std::vector<Segment>& segs) {
  segs.clear();
  int64_t oh = p0 / s.wo, ow0 = p0 % s.wo, i = 0;
  while (i < t) {
    const int64_t len = std::min(s.wo - ow0, t - i);
    segs.push_back({(oh * s.sh - pr.row0) * pr.wp + ow0 * s.sw, i, len});
    i += len;
    ++oh;
    ow0 = 0;
  }
  return int64_t(segs.size());
}
}  // namespace

void im2col_tile_padded(const ConvShape& s, const PaddedRows& pr, int64_t p0, int64_t t,
                        float* col, int64_t ldc) {
  static thread_local std::vector<Segment> segs;
  const int64_t nseg = tile_segments(s, pr, p0, t, segs);
  const int64_t cg = s.cg(), plane = pr.prows * pr.wp, sw = s.sw;
  for (int64_t c = 0; c < cg; ++c) {
    for (int64_t r = 0; r < s.r; ++r) {
      for (int64_t q = 0; q < s.s; ++q) {
        float* row = col + ((c * s.r + r) * s.s + q) * ldc;
        const float* base = pr.data + c * plane + r * s.dh * pr.wp + q * s.dw;
        for (int64_t g = 0; g < nseg; ++g) {
          const Segment sg = segs[size_t(g)];
          const float* __restrict__ src = base + sg.src;
          float* __restrict__ dst = row + sg.dst;
          if (sw == 1) {
#pragma omp simd
            for (int64_t e = 0; e < sg.len; ++e) dst[e] = src[e];
          } else {
            for (int64_t e = 0; e < sg.len; ++e) dst[e] = src[e * sw];
          }
        }
      }
    }
  }
}

void col2im_tile_padded(const ConvShape& s, const float* col, int64_t ldc, int64_t p0, int64_t t,
                        const PaddedRows& pr) {
  static thread_local std::vector<Segment> segs;
  const int64_t nseg = tile_segments(s, pr, p0, t, segs);
  const int64_t cg = s.cg(), plane = pr.prows * pr.wp, sw = s.sw;
  for (int64_t c = 0; c < cg; ++c) {
    for (int64_t r = 0; r < s.r; ++r) {
      for (int64_t q = 0; q < s.s; ++q) {
        const float* row = col + ((c * s.r + r) * s.s + q) * ldc;
        float* base = pr.data + c * plane + r * s.dh * pr.wp + q * s.dw;
        for (int64_t g = 0; g < nseg; ++g) {
          const Segment sg = segs[size_t(g)];
          float* __restrict__ dst = base + sg.src;
          const float* __restrict__ src = row + sg.dst;
          if (sw == 1) {
#pragma omp simd
            for (int64_t e = 0; e < sg.len; ++e) dst[e] += src[e];
          } else {
            for (int64_t e = 0; e < sg.len; ++e) dst[e * sw] += src[e];
          }
        }
      }
    }
  }
}

}  // namespace conv
}  // namespace nnf
