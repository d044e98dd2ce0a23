// Attention forward, variant 2 ("kq"): scores computed transposed, S^T = K Q^T.
//
// Same FlashAttention-2 loop as variant 1 (attention_fwd_qk.per_isa.cpp), but the score
// tile is keys x queries: the tile GEMM then broadcasts K elements read in place and
// multiplies a Q^T panel packed once per task, so K is never transposed or copied
// (variant 1 re-packs K^T and V for every query block; this one measured 1.2-2.5x
// faster on the bench shapes, with the log2-unit softmax and the GEMM-fused rescale). The
// online softmax runs down the columns, vectorised across queries, and O += P V reads
// S^T transposed in place; V is read in place too when D is a multiple of 16 and its
// rows are unit-stride, else packed. Each query's max and sum still run over keys in
// one fixed order, so results stay bitwise identical for any thread count.
// Scratch per thread: Q^T (D x Bq), S^T (Bk x Bq), O (Bq x Dp), V (Bk x Dp), row stats.
#include <omp.h>

#include <atomic>
#include <cmath>
#include <new>

#include "common/aligned_buffer.h"
#include "cpu/attention/attention.h"
#include "cpu/attention/attention_tile.h"
#include "cpu/attention/attention_tiles_common.h"
#include "cpu/nn/vmath.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace {

using namespace attn_impl;
using attn::kBk;
using attn::kBq;
using attn::MutView4;

struct KqScratch {
  float *qt = nullptr, *st = nullptr, *o = nullptr, *v = nullptr, *m = nullptr, *l = nullptr,
        *alpha = nullptr, *msafe = nullptr;
  static size_t floats(int64_t D) {
    const int64_t dp = round_up(D, 16);
    return size_t(D * kBq + kBk * kBq + kBq * dp + kBk * dp + 4 * kBq + 64);
  }
  KqScratch(float* base, int64_t D) {
    if (!base) return;
    const int64_t dp = round_up(D, 16);
    qt = base;
    st = qt + D * kBq;
    o = st + kBk * kBq;
    v = o + kBq * dp;
    m = v + kBk * dp;
    l = m + kBq;
    alpha = l + kBq;
    msafe = alpha + kBq;
  }
};

// out rows = O / l (0 where no key was visible), lse = m + log l (-inf there).
// m_unit: the running max's unit in natural-log units (1, or ln 2 for log2 scores).
void write_rows(const Problem& pr, const MutView4& out, float* lse, int64_t b, int64_t h,
                int64_t i0, int64_t m, const KqScratch& t, float m_unit) {
  const int64_t D = pr.D, dp = round_up(D, 16);
  for (int64_t r = 0; r < m; ++r) {
    const float l = t.l[r];
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    float* dst = out.p + b * out.sb + h * out.sh + (i0 + r) * out.si;
    const float* o = t.o + r * dp;
    if (out.sd == 1) {
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) dst[d] = o[d] * inv;
    } else {
      for (int64_t d = 0; d < D; ++d) dst[d * out.sd] = o[d] * inv;
    }
    lse[(b * pr.H + h) * pr.Lq + i0 + r] = l > 0.0f ? t.m[r] * m_unit + std::log(l) : kNegInf;
  }
}


// Mask (additive values in log2 units) and causal limit on the transposed tile st
// (n keys x m queries, ld kBq).
void mask_tile_t(const Problem& pr, int64_t b, int64_t h, int64_t i0, int64_t m, int64_t j0,
                 int64_t n, float* st) {
  const attn::MaskRef& mk = pr.mask;
  if (mk.kind != MaskKind::none) {
    for (int64_t c = 0; c < n; ++c) {
      float* row = st + c * kBq;
      const int64_t base = b * mk.sb + h * mk.sh + i0 * mk.si + (j0 + c) * mk.sj;
      if (mk.kind == MaskKind::additive) {
        const float* mp = static_cast<const float*>(mk.p) + base;
        for (int64_t r = 0; r < m; ++r) row[r] += attn_tile::kLog2e * mp[r * mk.si];
      } else {
        const uint8_t* mp = static_cast<const uint8_t*>(mk.p) + base;
        for (int64_t r = 0; r < m; ++r) row[r] = mp[r * mk.si] ? row[r] : kNegInf;
      }
    }
  }
  if (pr.causal) {
    // Key j is hidden from queries i < j - (Lk - Lq): a prefix of each key row.
    const int64_t off = pr.Lk - pr.Lq;
    for (int64_t c = 0; c < n; ++c) {
      int64_t hide = j0 + c - off - i0;
      if (hide <= 0) continue;
      if (hide > m) hide = m;
      float* row = st + c * kBq;
      for (int64_t r = 0; r < hide; ++r) row[r] = kNegInf;
    }
  }
}

// Few query rows (decoding: Lq = 1 against a cache): the column-wise softmax of S^T
// would run on 1..kRowPathMax lanes, so scores are formed row-wise instead, one dot
// product per (query, key) with K read in place, and the softmax runs along keys.
constexpr int64_t kRowPathMax = 4;

void forward_rows_small(const Problem& pr, const View4& q, const View4& k, const View4& v,
                        const MutView4& out, float* lse, int64_t b, int64_t h, int64_t i0,
                        int64_t m, const KqScratch& t) {
  const int64_t D = pr.D, dp = round_up(D, 16);
  const int64_t hk = h / (pr.H / pr.Hkv);
  const int64_t kend = key_end(pr, i0, m);
  const bool dropout = pr.dropout_p > 0.0f;
  const uint64_t thr = dropout_threshold(pr.dropout_p);
  const float keep_scale = dropout ? 1.0f / (1.0f - pr.dropout_p) : 1.0f;
  const bool v_in_place = v.sd == 1 && D % 16 == 0;
  float* qs = t.qt;  // m x dp rows (scaled), reusing the Q^T room
  pack_rows(q, b, h, i0, m, D, pr.scale, qs, dp);
  for (int64_t r = 0; r < m; ++r) {
    t.m[r] = kNegInf;
    t.l[r] = 0.0f;
  }
  for (int64_t x = 0; x < m * dp; ++x) t.o[x] = 0.0f;
  const float* kbase = k.p + b * k.sb + hk * k.sh;
  for (int64_t j0 = 0; j0 < kend; j0 += kBk) {
    const int64_t n = kend - j0 < kBk ? kend - j0 : kBk;
    for (int64_t r = 0; r < m; ++r) {
      const float* qr = qs + r * dp;
      float* s = t.st + r * kBk;
      for (int64_t c = 0; c < n; ++c) {
        const float* kr = kbase + (j0 + c) * k.si;
        float acc = 0.0f;
        if (k.sd == 1) {
#pragma omp simd reduction(+ : acc)
          for (int64_t d = 0; d < D; ++d) acc += qr[d] * kr[d];
        } else {
          for (int64_t d = 0; d < D; ++d) acc += qr[d] * kr[d * k.sd];
        }
        s[c] = acc;
      }
      const int64_t i = i0 + r;
      mask_row(pr, b, h, i, j0, n, s);
      float mx = kNegInf;
#pragma omp simd reduction(max : mx)
      for (int64_t c = 0; c < n; ++c) mx = s[c] > mx ? s[c] : mx;
      const float m_new = mx > t.m[r] ? mx : t.m[r];
      const float ms = m_new == kNegInf ? 0.0f : m_new;
      const float alpha = vm_exp(t.m[r] - ms);
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t c = 0; c < n; ++c) {
        const float p = vm_exp(s[c] - ms);
        s[c] = p;
        sum += p;
      }
      t.l[r] = t.l[r] * alpha + sum;
      t.m[r] = m_new;
      if (dropout) {
        const uint64_t key = dropout_row_key(pr, b, h, i);
        for (int64_t c = 0; c < n; ++c)
          s[c] = dropout_keep(key, j0 + c, thr) ? s[c] * keep_scale : 0.0f;
      }
      if (alpha != 1.0f) {
        float* o = t.o + r * dp;
#pragma omp simd
        for (int64_t d = 0; d < dp; ++d) o[d] *= alpha;
      }
    }
    if (v_in_place) {
      attn_tile::gemm(m, dp, n, t.st, kBk, 1, v.p + b * v.sb + hk * v.sh + j0 * v.si, v.si, t.o,
                      dp, true);
    } else {
      pack_rows(v, b, hk, j0, n, D, 1.0f, t.v, dp);
      attn_tile::gemm(m, dp, n, t.st, kBk, 1, t.v, dp, t.o, dp, true);
    }
  }
  write_rows(pr, out, lse, b, h, i0, m, t, 1.0f);
}

void forward_block_kq(const Problem& pr, const View4& q, const View4& k, const View4& v,
                      const MutView4& out, float* lse, int64_t b, int64_t h, int64_t qb,
                      const KqScratch& t) {
  const int64_t D = pr.D, dp = round_up(D, 16);
  const int64_t i0 = qb * kBq, m = pr.Lq - i0 < kBq ? pr.Lq - i0 : kBq;
  if (m <= kRowPathMax) return forward_rows_small(pr, q, k, v, out, lse, b, h, i0, m, t);
  const int64_t mp = round_up(m, 16);
  const int64_t hk = h / (pr.H / pr.Hkv);
  const int64_t kend = key_end(pr, i0, m);
  const bool dropout = pr.dropout_p > 0.0f;
  const uint64_t thr = dropout_threshold(pr.dropout_p);
  const float keep_scale = dropout ? 1.0f / (1.0f - pr.dropout_p) : 1.0f;
  const bool v_in_place = v.sd == 1 && D % 16 == 0;

  // Q^T (D x mp), scaled; columns [m, mp) zero.
  pack_cols(q, b, h, i0, m, D, t.qt, kBq);
  // Scores in log2 units: the exponentials below are 2^x (attn_tile::vexp2).
  const float qscale = pr.scale * attn_tile::kLog2e;
  for (int64_t x = 0; x < D * kBq; ++x) t.qt[x] *= qscale;
  for (int64_t r = 0; r < mp; ++r) {  // padding lanes too: the exp loop reads them
    t.m[r] = kNegInf;
    t.l[r] = 0.0f;
    t.msafe[r] = 0.0f;
  }
  if (kend == 0)  // no visible key: O stays 0 (else the first PV product writes it)
    for (int64_t x = 0; x < m * dp; ++x) t.o[x] = 0.0f;
  const float* kbase = k.p + b * k.sb + hk * k.sh;

  for (int64_t j0 = 0; j0 < kend; j0 += kBk) {
    const int64_t n = kend - j0 < kBk ? kend - j0 : kBk;
    // S^T (n x mp) = K[j0 : j0 + n] Q^T, K element (c, d) read in place.
    // Causal: key c is hidden from queries r < c + (j0 - off - i0); those columns of
    // whole 16-query groups are skipped here and set to -inf by mask_tile_t.
    attn_tile::Band sband, pband;
    if (pr.causal) {
      sband.col_lo = j0 - (pr.Lk - pr.Lq) - i0;
      pband.k_hi = i0 + (pr.Lk - pr.Lq) - j0 + 1;
    }
    attn_tile::gemm_band(n, mp, D, kbase + j0 * k.si, k.si, k.sd, t.qt, kBq, t.st, kBq, false,
                         sband);
    mask_tile_t(pr, b, h, i0, m, j0, n, t.st);

    // Column passes with the query vector outermost, so the running max and sum of a
    // vector of queries stay in a register down all n keys (each lane still sums its
    // keys in key order). Whole vectors over the padded range [0, mp): lanes past m
    // are scratch.
    using attn_tile::vf;
    using attn_tile::vload;
    using attn_tile::vstore;
    constexpr int64_t W = attn_tile::kW;
    float* mx = t.alpha;  // the column max, then alpha
    for (int64_t r = 0; r < mp; r += W) {
      vf acc = vf{} + kNegInf;
      for (int64_t c = 0; c < n; ++c) {
        const vf x = vload(t.st + c * kBq + r);
        acc = x > acc ? x : acc;
      }
      vstore(mx + r, acc);
    }
#pragma omp simd
    for (int64_t r = 0; r < m; ++r) {
      const float m_new = mx[r] > t.m[r] ? mx[r] : t.m[r];
      // A column with no visible key yet keeps m = -inf; exp against 0 then gives p = 0.
      const float ms = m_new == kNegInf ? 0.0f : m_new;
      t.alpha[r] = vm_exp((t.m[r] - ms) * attn_tile::kLn2);  // 2^(m_old - m_new)
      t.msafe[r] = ms;
      t.m[r] = m_new;
    }
    for (int64_t r = 0; r < mp; r += W) {
      const vf ms = vload(t.msafe + r);
      vf sum = vload(t.l + r) * vload(t.alpha + r);
      for (int64_t c = 0; c < n; ++c) {
        float* x = t.st + c * kBq + r;
        const vf p = attn_tile::vexp2(vload(x) - ms);
        vstore(x, p);
        sum += p;
      }
      vstore(t.l + r, sum);
    }
    if (dropout) {  // l keeps the undropped sum: dropout acts on normalised weights
      for (int64_t r = 0; r < m; ++r) {
        const uint64_t key = dropout_row_key(pr, b, h, i0 + r);
        for (int64_t c = 0; c < n; ++c) {
          float& p = t.st[c * kBq + r];
          p = dropout_keep(key, j0 + c, thr) ? p * keep_scale : 0.0f;
        }
      }
    }
    // O (m x dp) = alpha O + P V, P element (r, c) = S^T[c, r]; the tile GEMM applies
    // alpha as it loads O. Keys beyond a query's causal limit have P = 0: skipped.
    if (v_in_place) {
      attn_tile::gemm_band(m, dp, n, t.st, 1, kBq, v.p + b * v.sb + hk * v.sh + j0 * v.si, v.si,
                           t.o, dp, j0 > 0, pband, t.alpha);
    } else {
      pack_rows(v, b, hk, j0, n, D, 1.0f, t.v, dp);
      attn_tile::gemm_band(m, dp, n, t.st, 1, kBq, t.v, dp, t.o, dp, j0 > 0, pband, t.alpha);
    }
  }

  write_rows(pr, out, lse, b, h, i0, m, t, attn_tile::kLn2);
}

}  // namespace

void attention_forward_kq_tasks(const Problem& pr, const View4& q, const View4& k,
                                const View4& v, const MutView4& out, float* lse, int64_t ntasks,
                                int nt) {
  const int64_t nqb = (pr.Lq + kBq - 1) / kBq;
  std::atomic<bool> failed{false};
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    FlushDenormals ftz;
    float* base = nullptr;
    try {
      base = thread_scratch(0).floats(KqScratch::floats(pr.D));
    } catch (const std::bad_alloc&) {
      failed = true;
    }
    const KqScratch t(base, pr.D);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < ntasks; ++task) {
      if (!base) continue;
      const int64_t qb = nqb - 1 - task % nqb;  // costly causal blocks first
      const int64_t bh = task / nqb;
      forward_block_kq(pr, q, k, v, out, lse, bh / pr.H, bh % pr.H, qb, t);
    }
  }
  if (failed) throw std::bad_alloc();
}

NNF_REGISTER_PER_ISA(attn::forward_kq_stub, attention_forward_kq_tasks);

}  // namespace NNF_ISA_NS
}  // namespace nnf
