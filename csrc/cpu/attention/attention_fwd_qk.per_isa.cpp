// Attention forward, variant 1 ("qk"): FlashAttention-2's loop order on the CPU
// (Dao 2023, Alg. 1), scores S = Q K^T. Kept selectable (_core.attention_variant("qk"))
// as a cross-check and a baseline: variant 2 (attention_fwd_kq.per_isa.cpp) is 1.2-2x
// faster on every bench shape, mostly by not re-packing K^T for each query block.
//
// One task = one (b, h, block of kBq query rows). The task packs its Q rows (scaled),
// then walks the key blocks it can see: pack K^T and V tiles, S = Q K^T (tile GEMM),
// mask + running max + exp + row sums fused in one pass over S, rescale the output
// accumulator by exp(m_old - m_new), O += P V. Final O / l and lse = m + log l.
// Scratch per thread: Q (Bq x Dp), K^T (D x Bk), V (Bk x Dp), S (Bq x Bk), O (Bq x Dp),
// m and l (Bq); Dp = D rounded up to 16. Tasks share nothing, so the result is the
// same whatever thread runs which task (bitwise identical for any thread count).
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

struct FwdScratch {
  float *q, *kt, *v, *s, *o, *m, *l;
  static size_t floats(int64_t D) {
    const int64_t dp = round_up(D, 16);
    return size_t(kBq * dp + round_up(D * kBk, 16) + kBk * dp + kBq * kBk + kBq * dp + 2 * kBq + 64);
  }
  FwdScratch(float* base, int64_t D) : q(nullptr), kt(nullptr), v(nullptr), s(nullptr), o(nullptr),
                                        m(nullptr), l(nullptr) {
    if (!base) return;
    const int64_t dp = round_up(D, 16);
    q = base;
    kt = q + kBq * dp;
    v = kt + round_up(D * kBk, 16);
    s = v + kBk * dp;
    o = s + kBq * kBk;
    m = o + kBq * dp;
    l = m + kBq;
  }
};

void forward_block(const Problem& pr, const View4& q, const View4& k, const View4& v,
                   const MutView4& out, float* lse, int64_t b, int64_t h, int64_t qb,
                   const FwdScratch& t) {
  const int64_t D = pr.D, dp = round_up(D, 16);
  const int64_t i0 = qb * kBq, m = pr.Lq - i0 < kBq ? pr.Lq - i0 : kBq;
  const int64_t hk = h / (pr.H / pr.Hkv);
  const int64_t kend = key_end(pr, i0, m);
  const bool dropout = pr.dropout_p > 0.0f;
  const uint64_t thr = dropout_threshold(pr.dropout_p);
  const float keep_scale = dropout ? 1.0f / (1.0f - pr.dropout_p) : 1.0f;

  pack_rows(q, b, h, i0, m, D, pr.scale, t.q, dp);
  for (int64_t r = 0; r < m; ++r) {
    t.m[r] = kNegInf;
    t.l[r] = 0.0f;
  }
  for (int64_t x = 0; x < m * dp; ++x) t.o[x] = 0.0f;

  for (int64_t j0 = 0; j0 < kend; j0 += kBk) {
    const int64_t n = kend - j0 < kBk ? kend - j0 : kBk;
    const int64_t np = round_up(n, 16);
    pack_cols(k, b, hk, j0, n, D, t.kt, kBk);
    pack_rows(v, b, hk, j0, n, D, 1.0f, t.v, dp);
    attn_tile::gemm(m, np, D, t.q, dp, 1, t.kt, kBk, t.s, kBk, false);

    for (int64_t r = 0; r < m; ++r) {
      const int64_t i = i0 + r;
      float* s = t.s + r * kBk;
      mask_row(pr, b, h, i, j0, n, s);
      float mx = kNegInf;
#pragma omp simd reduction(max : mx)
      for (int64_t c = 0; c < n; ++c) mx = s[c] > mx ? s[c] : mx;
      const float m_old = t.m[r];
      const float m_new = mx > m_old ? mx : m_old;
      if (m_new == kNegInf) {  // every key so far masked: P row is 0, O and l stay 0
        for (int64_t c = 0; c < n; ++c) s[c] = 0.0f;
        continue;
      }
      const float alpha = vm_exp(m_old - m_new);  // 0 when m_old = -inf
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t c = 0; c < n; ++c) {
        const float p = vm_exp(s[c] - m_new);
        s[c] = p;
        sum += p;
      }
      t.l[r] = t.l[r] * alpha + sum;
      t.m[r] = m_new;
      if (dropout) {  // l keeps the undropped sum: dropout acts on normalised weights
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
    attn_tile::gemm(m, dp, n, t.s, kBk, 1, t.v, dp, t.o, dp, true);
  }

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
    lse[(b * pr.H + h) * pr.Lq + i0 + r] = l > 0.0f ? t.m[r] + std::log(l) : kNegInf;
  }
}

}  // namespace

void attention_forward_tasks(const Problem& pr, const View4& q, const View4& k, const View4& v,
                             const MutView4& out, float* lse, int64_t ntasks, int nt) {
  const int64_t nqb = (pr.Lq + kBq - 1) / kBq;
  std::atomic<bool> failed{false};
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    FlushDenormals ftz;
    float* base = nullptr;
    try {
      base = thread_scratch(0).floats(FwdScratch::floats(pr.D));
    } catch (const std::bad_alloc&) {
      failed = true;
    }
    const FwdScratch t(base, pr.D);
    // Causal blocks near the end of the sequence cost the most: hand them out first.
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < ntasks; ++task) {
      if (!base) continue;
      const int64_t qb = nqb - 1 - task % nqb;
      const int64_t bh = task / nqb;
      forward_block(pr, q, k, v, out, lse, bh / pr.H, bh % pr.H, qb, t);
    }
  }
  if (failed) throw std::bad_alloc();
}

NNF_REGISTER_PER_ISA(attn::forward_qk_stub, attention_forward_tasks);

}  // namespace NNF_ISA_NS
}  // namespace nnf
