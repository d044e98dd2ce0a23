// Pieces shared by the forward and backward attention kernels (per-ISA, included by
// *.per_isa.cpp only): denormal control (common/flush_denormals.h), the dropout hash,
// tile packing and the score-tile masking. Everything is internal to the including translation unit.
#pragma once
#include <cstdint>
#include <cstring>
#include <limits>

#include "common/flush_denormals.h"
#include "cpu/attention/attention.h"
#include "cpu/attention/attention_tile.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace attn_impl {

using attn::MaskKind;
using attn::Problem;
using attn::View4;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

using ::nnf::FlushDenormals;  // common/flush_denormals.h

// splitmix64 finaliser: the dropout decision for (b, h, i, j) is a pure function of
// the seed and those indices.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
inline uint64_t dropout_row_key(const Problem& pr, int64_t b, int64_t h, int64_t i) {
  const uint64_t k = mix64(pr.seed ^ 0xA54FF53A5F1D36F1ull);
  const uint64_t row = (uint64_t(b) * uint64_t(pr.H) + uint64_t(h)) * uint64_t(pr.Lq) + uint64_t(i);
  return mix64(k + row * 0x9E3779B97F4A7C15ull);
}
// Keep iff the top 32 bits of the hash are >= threshold (= p * 2^32).
inline bool dropout_keep(uint64_t row_key, int64_t j, uint64_t threshold) {
  return (mix64(row_key ^ (uint64_t(j) * 0xD6E8FEB86659FD93ull)) >> 32) >= threshold;
}
inline uint64_t dropout_threshold(float p) { return uint64_t(double(p) * 4294967296.0); }

// dst[r*ld + d] = alpha * x[b, h, i0 + r, d] for r < m, d < D; zero for d in [D, ld).
inline void pack_rows(const View4& x, int64_t b, int64_t h, int64_t i0, int64_t m, int64_t D,
                      float alpha, float* dst, int64_t ld) {
  for (int64_t r = 0; r < m; ++r) {
    const float* src = x.p + b * x.sb + h * x.sh + (i0 + r) * x.si;
    float* o = dst + r * ld;
    if (x.sd == 1) {
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) o[d] = alpha * src[d];
    } else {
      for (int64_t d = 0; d < D; ++d) o[d] = alpha * src[d * x.sd];
    }
    for (int64_t d = D; d < ld; ++d) o[d] = 0.0f;
  }
}

// Transposed: dst[d*ld + c] = x[b, h, j0 + c, d] for c < n, zero for c in [n, ld), d < D.
// Whole W x W blocks through registers (attn_tile::transpose_block) when the rows are
// unit-stride; the edges and strided rows element by element.
inline void pack_cols(const View4& x, int64_t b, int64_t h, int64_t j0, int64_t n, int64_t D,
                      float* dst, int64_t ld) {
  constexpr int64_t W = attn_tile::kW;
  const int64_t npad = round_up(n, 16);
  const float* src = x.p + b * x.sb + h * x.sh + j0 * x.si;
  int64_t c0 = 0, d0 = 0;
  if (x.sd == 1) {
    for (; c0 + W <= n; c0 += W)
      for (d0 = 0; d0 + W <= D; d0 += W)
        attn_tile::transpose_block(src + c0 * x.si + d0, x.si, dst + d0 * ld + c0, ld);
    c0 = n / W * W;
    d0 = n >= W ? D / W * W : 0;
  }
  // Remainders: columns [0, c0) x rows [d0, D) and columns [c0, n) x all rows.
  for (int64_t d = d0; d < D; ++d)
    for (int64_t c = 0; c < c0; ++c) dst[d * ld + c] = src[c * x.si + d * x.sd];
  for (int64_t d = 0; d < D; ++d) {
    float* o = dst + d * ld;
    for (int64_t c = c0; c < n; ++c) o[c] = src[c * x.si + d * x.sd];
    for (int64_t c = n; c < npad; ++c) o[c] = 0.0f;
  }
}

// Adds the mask and the causal limit to one score row s[0, n) of query i, keys j0..j0+n.
// unit: what an additive mask is multiplied by (1, or log2(e) for scores in log2 units).
inline void mask_row(const Problem& pr, int64_t b, int64_t h, int64_t i, int64_t j0, int64_t n,
                     float* s, float unit = 1.0f) {
  const attn::MaskRef& mk = pr.mask;
  if (mk.kind == MaskKind::additive) {
    const float* mp = static_cast<const float*>(mk.p) + b * mk.sb + h * mk.sh + i * mk.si + j0 * mk.sj;
    if (mk.sj == 1) {
#pragma omp simd
      for (int64_t c = 0; c < n; ++c) s[c] += unit * mp[c];
    } else {
      for (int64_t c = 0; c < n; ++c) s[c] += unit * mp[c * mk.sj];
    }
  } else if (mk.kind == MaskKind::boolean) {
    const uint8_t* mp = static_cast<const uint8_t*>(mk.p) + b * mk.sb + h * mk.sh + i * mk.si + j0 * mk.sj;
    if (mk.sj == 1) {
#pragma omp simd
      for (int64_t c = 0; c < n; ++c) s[c] = mp[c] ? s[c] : kNegInf;
    } else {
      for (int64_t c = 0; c < n; ++c) s[c] = mp[c * mk.sj] ? s[c] : kNegInf;
    }
  }
  if (pr.causal) {
    const int64_t last = i + (pr.Lk - pr.Lq) - j0;  // keys c <= last are visible
    for (int64_t c = last + 1 < 0 ? 0 : last + 1; c < n; ++c) s[c] = kNegInf;
  }
}

// Keys [0, end) that some row of the query block [i0, i0 + m) can see.
inline int64_t key_end(const Problem& pr, int64_t i0, int64_t m) {
  if (!pr.causal) return pr.Lk;
  const int64_t e = i0 + m + (pr.Lk - pr.Lq);
  return e < 0 ? 0 : (e > pr.Lk ? pr.Lk : e);
}

}  // namespace attn_impl
}  // namespace NNF_ISA_NS
}  // namespace nnf
