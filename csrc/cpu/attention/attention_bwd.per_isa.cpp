// Attention backward: FlashAttention-2's backward (Dao 2023, Alg. 2) with P recomputed
// from the forward's lse, parallel over (b, kv head, key chunk) so that both cores work
// when B x H = 1.
//
// One task owns the keys of one chunk of one kv head: for each key block it packs
// K^T, K and V^T once, then for every query head of its group and every query block
// that sees the keys:  S = Q K^T (in log2 units, as the forward),  P = 2^(S - lse log2 e),
// dV += P~^T dO  (P~ = P with dropout),  dP~ = dO V^T,  dS = P o (dP~ o Z/(1-p) - delta),
// dK += dS^T (scale Q),  dQ_part[chunk] += dS K.  dK and dV of the block are complete
// when the task leaves it
// (written once, no atomics); dQ is summed over chunks afterwards in chunk order
// (attention_dispatch.cpp). The chunk count depends on the shape only, so every sum
// runs in the same order for any thread count.
#include <omp.h>

#include <atomic>
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
using attn::BackwardBuffers;
using attn::kBk;
using attn::kBq;
using attn::MutView4;

struct BwdScratch {
  float *kt, *kr, *vt, *dk, *dv, *q, *dout, *s, *dp, *delta;
  static size_t floats(int64_t D) {
    const int64_t dpad = round_up(D, 16), dk = round_up(D * kBk, 16);
    return size_t(2 * dk + 3 * kBk * dpad + 2 * kBq * dpad + 2 * kBq * kBk + kBq + 64);
  }
  explicit BwdScratch(float* base, int64_t D) {
    kt = kr = vt = dk = dv = q = dout = s = dp = delta = nullptr;
    if (!base) return;
    const int64_t dpad = round_up(D, 16), dkt = round_up(D * kBk, 16);
    kt = base;
    vt = kt + dkt;
    kr = vt + dkt;
    dk = kr + kBk * dpad;
    dv = dk + kBk * dpad;
    q = dv + kBk * dpad;
    dout = q + kBq * dpad;
    s = dout + kBq * dpad;
    dp = s + kBq * kBk;
    delta = dp + kBq * kBk;
  }
};

void store_rows(const float* src, int64_t ld, int64_t n, int64_t D, const MutView4& dst,
                int64_t b, int64_t h, int64_t j0, float alpha) {
  for (int64_t c = 0; c < n; ++c) {
    float* o = dst.p + b * dst.sb + h * dst.sh + (j0 + c) * dst.si;
    const float* x = src + c * ld;
    if (dst.sd == 1) {
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) o[d] = alpha * x[d];
    } else {
      for (int64_t d = 0; d < D; ++d) o[d * dst.sd] = alpha * x[d];
    }
  }
}

// One (b, kv head hk, key block at j0 of n keys) of the task.
void backward_key_block(const Problem& pr, const View4& q, const View4& k, const View4& v,
                        const View4& out, const View4& dout, const BackwardBuffers& bb, const MutView4& dk,
                        const MutView4& dv, int64_t b, int64_t hk, int64_t chunk, int64_t j0,
                        int64_t n, bool first, const BwdScratch& t) {
  const int64_t D = pr.D, dpad = round_up(D, 16), np = round_up(n, 16);
  const int64_t group = pr.H / pr.Hkv;
  const bool dropout = pr.dropout_p > 0.0f;
  const uint64_t thr = dropout_threshold(pr.dropout_p);
  const float keep_scale = dropout ? 1.0f / (1.0f - pr.dropout_p) : 1.0f;

  pack_cols(k, b, hk, j0, n, D, t.kt, kBk);
  pack_cols(v, b, hk, j0, n, D, t.vt, kBk);
  pack_rows(k, b, hk, j0, n, D, 1.0f, t.kr, dpad);
  for (int64_t x = 0; x < n * dpad; ++x) t.dk[x] = t.dv[x] = 0.0f;

  // Causal: query i sees key j0 iff i >= j0 - (Lk - Lq).
  int64_t qstart = pr.causal ? j0 - (pr.Lk - pr.Lq) : 0;
  if (qstart < 0) qstart = 0;
  for (int64_t hh = 0; hh < group; ++hh) {
    const int64_t h = hk * group + hh;
    const float* lse = bb.lse + b * bb.lse_sb + h * bb.lse_sh;
    float* dq = bb.dq_part + ((chunk * pr.B + b) * pr.H + h) * pr.Lq * bb.dp;
    // The chunk's first key block writes its dQ partial rows (later blocks add to them);
    // rows before it that no key of the chunk reaches (causal) are zeroed here.
    const int64_t ifirst = qstart / kBq * kBq;
    if (first)
      for (int64_t x = 0; x < ifirst * bb.dp; ++x) dq[x] = 0.0f;
    for (int64_t i0 = ifirst; i0 < pr.Lq; i0 += kBq) {
      const int64_t m = pr.Lq - i0 < kBq ? pr.Lq - i0 : kBq;
      pack_rows(q, b, h, i0, m, D, pr.scale * attn_tile::kLog2e, t.q, dpad);  // log2 units
      pack_rows(dout, b, h, i0, m, D, 1.0f, t.dout, dpad);
      // delta_i = dout_i . out_i (FlashAttention-2's D_i), for this block's rows.
      for (int64_t r = 0; r < m; ++r) {
        const float* o = out.p + b * out.sb + h * out.sh + (i0 + r) * out.si;
        const float* g = t.dout + r * dpad;
        float acc = 0.0f;
        if (out.sd == 1) {
#pragma omp simd reduction(+ : acc)
          for (int64_t d = 0; d < D; ++d) acc += g[d] * o[d];
        } else {
          for (int64_t d = 0; d < D; ++d) acc += g[d] * o[d * out.sd];
        }
        t.delta[r] = acc;
      }
      // Causal band (row r = query i0 + r, column / k index c = key j0 + c): key c is
      // visible to r iff c <= r + shift. Hidden scores are skipped in the tile GEMMs
      // (left unwritten, then masked to P = 0) and their zero terms not summed.
      attn_tile::Band qrow, qk, krow;  // S and dP columns; dQ's k; dV and dK's k
      if (pr.causal) {
        const int64_t shift = i0 + (pr.Lk - pr.Lq) - j0;
        qrow.col_hi = shift + 1;
        qk.k_hi = shift + 1;
        krow.k_lo = -shift;
      }
      attn_tile::gemm_band(m, np, D, t.q, dpad, 1, t.kt, kBk, t.s, kBk, false, qrow);
      attn_tile::gemm_band(m, np, D, t.dout, dpad, 1, t.vt, kBk, t.dp, kBk, false, qrow);
      for (int64_t r = 0; r < m; ++r) {
        const int64_t i = i0 + r;
        float* s = t.s + r * kBk;
        float* dp = t.dp + r * kBk;
        const float lnat = lse[i * bb.lse_si];
        const float l = lnat * attn_tile::kLog2e;  // scores are in log2 units
        if (lnat == kNegInf) {  // a row that saw no key: P = 0, no gradient
          for (int64_t c = 0; c < n; ++c) s[c] = dp[c] = 0.0f;
          continue;
        }
        mask_row(pr, b, h, i, j0, n, s, attn_tile::kLog2e);
        const float di = t.delta[r];
        if (!dropout) {
          // Whole vectors up to np: columns past n are scratch no GEMM reads.
          using attn_tile::vf;
          const vf lv = vf{} + l, dv_ = vf{} + di;
          for (int64_t c = 0; c < np; c += attn_tile::kW) {
            const vf p = attn_tile::vexp2(attn_tile::vload(s + c) - lv);
            attn_tile::vstore(s + c, p);
            // dp may be unwritten (causal band) where p = 0
            const vf g = p * (attn_tile::vload(dp + c) - dv_);
            attn_tile::vstore(dp + c, p > 0.0f ? g : vf{});
          }
        } else {
          const uint64_t key = dropout_row_key(pr, b, h, i);
          for (int64_t c = 0; c < n; ++c) {
            const float p = vm_exp((s[c] - l) * attn_tile::kLn2);
            const float z = dropout_keep(key, j0 + c, thr) ? keep_scale : 0.0f;
            s[c] = p * z;                     // P~: what forward multiplied V by
            dp[c] = p > 0.0f ? p * (dp[c] * z - di) : 0.0f;  // dS
          }
        }
      }
      // dV += P~^T dO and dK += dS^T (scale Q): A read transposed in place.
      attn_tile::gemm_band(n, dpad, m, t.s, 1, kBk, t.dout, dpad, t.dv, dpad, true, krow);
      attn_tile::gemm_band(n, dpad, m, t.dp, 1, kBk, t.q, dpad, t.dk, dpad, true, krow);
      // dQ_part (unscaled) += dS K.
      attn_tile::gemm_band(m, dpad, n, t.dp, kBk, 1, t.kr, dpad, dq + i0 * bb.dp, bb.dp, !first,
                           qk);
    }
  }
  // dK was summed against Q scaled by scale * log2(e): ln 2 brings it to scale.
  store_rows(t.dk, dpad, n, D, dk, b, hk, j0, attn_tile::kLn2);
  store_rows(t.dv, dpad, n, D, dv, b, hk, j0, 1.0f);
}

}  // namespace

void attention_backward_kv_tasks(const Problem& pr, const View4& q, const View4& k,
                                 const View4& v, const View4& out, const View4& dout,
                                 const BackwardBuffers& bb, const MutView4& dq,
                                 const MutView4& dk, const MutView4& dv, int nt) {
  const int64_t nkb = (pr.Lk + kBk - 1) / kBk;
  const int64_t ntasks = pr.B * pr.Hkv * bb.nchunks;
  std::atomic<bool> failed{false};
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    FlushDenormals ftz;
    float* base = nullptr;
    try {
      base = thread_scratch(0).floats(BwdScratch::floats(pr.D));
    } catch (const std::bad_alloc&) {
      failed = true;
    }
    const BwdScratch t(base, pr.D);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < ntasks; ++task) {
      if (!base) continue;
      const int64_t chunk = task % bb.nchunks, bh = task / bb.nchunks;
      const int64_t b = bh / pr.Hkv, hk = bh % pr.Hkv;
      // Chunk c owns key blocks [c*nkb/nchunks, (c+1)*nkb/nchunks).
      const int64_t kb0 = chunk * nkb / bb.nchunks, kb1 = (chunk + 1) * nkb / bb.nchunks;
      for (int64_t kb = kb0; kb < kb1; ++kb) {
        const int64_t j0 = kb * kBk, n = pr.Lk - j0 < kBk ? pr.Lk - j0 : kBk;
        backward_key_block(pr, q, k, v, out, dout, bb, dk, dv, b, hk, chunk, j0, n, kb == kb0, t);
      }
      if (bb.nchunks == 1) {  // this task holds the whole dQ of its heads: write it now
        const int64_t group = pr.H / pr.Hkv;
        for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
          const float* src = bb.dq_part + (b * pr.H + h) * pr.Lq * bb.dp;
          store_rows(src, bb.dp, pr.Lq, pr.D, dq, b, h, 0, pr.scale);
        }
      }
    }
  }
  if (failed) throw std::bad_alloc();
}

// dq[b, h, i, :] = scale * sum over chunks c (in order) of dq_part[c, b, h, i, :D].
void attention_dq_reduce(const Problem& pr, const attn::BackwardBuffers& bb, const MutView4& dq,
                         int nt) {
  const int64_t heads = pr.B * pr.H, D = pr.D, dpad = bb.dp;
  const int64_t part = heads * pr.Lq * dpad;
  const float scale = pr.scale;
  const float* src = bb.dq_part;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
  for (int64_t bh = 0; bh < heads; ++bh) {
    const int64_t b = bh / pr.H, h = bh % pr.H;
    for (int64_t i = 0; i < pr.Lq; ++i) {
      const float* x = src + (bh * pr.Lq + i) * dpad;
      float* o = dq.p + b * dq.sb + h * dq.sh + i * dq.si;
      if (bb.nchunks == 1 && dq.sd == 1) {
#pragma omp simd
        for (int64_t d = 0; d < D; ++d) o[d] = scale * x[d];
        continue;
      }
      for (int64_t d = 0; d < D; ++d) {
        float acc = x[d];
        for (int64_t c = 1; c < bb.nchunks; ++c) acc += x[c * part + d];
        o[d * dq.sd] = scale * acc;
      }
    }
  }
}

NNF_REGISTER_PER_ISA(attn::backward_kv_stub, attention_backward_kv_tasks);
NNF_REGISTER_PER_ISA(attn::dq_reduce_stub, attention_dq_reduce);

}  // namespace NNF_ISA_NS
}  // namespace nnf
