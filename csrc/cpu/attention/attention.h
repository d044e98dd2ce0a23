// Fused flash-style attention on the CPU (FlashAttention-2's tiled online softmax).
//
// Shapes (strides in elements, any sign, 0 allowed for inputs):
//   q, out, dout, dq   (B, H, Lq, D)
//   k, v, dk, dv       (B, Hkv, Lk, D), H % Hkv == 0 (query head h reads kv head h / (H/Hkv))
//   lse                (B, H, Lq) float32, natural-log log-sum-exp of the scaled,
//                      masked scores; -inf for a row with no key left (its output is 0)
//   mask               broadcast to (B, H, Lq, Lk) by strides (0 on broadcast axes):
//                      bool (uint8, nonzero = keep) or additive float32
// causal: query i sees keys j <= i + (Lk - Lq) (bottom-right aligned, FlashAttention-2).
// Dropout keeps (i, j) of head (b, h) iff a hash of (seed, b, h, i, j) clears p, so
// the mask does not depend on tiles or threads and backward regenerates it.
//
// Memory beyond inputs and outputs: per-thread tiles (common/aligned_buffer.h's
// thread_scratch) and, in backward, dQ partial sums per fixed key chunk (see
// attention_dispatch.cpp). Never an Lq x Lk matrix. Results are bitwise identical for
// any thread count: every tile's reduction order is fixed by the shape alone.
#pragma once
#include <cstdint>

#include "common/dispatch.h"

namespace nnf {
namespace attn {

struct View4 {  // element (b, h, i, d) at p[b*sb + h*sh + i*si + d*sd]
  const float* p;
  int64_t sb, sh, si, sd;
};
struct MutView4 {
  float* p;
  int64_t sb, sh, si, sd;
};

enum class MaskKind : int { none = 0, boolean = 1, additive = 2 };
struct MaskRef {
  MaskKind kind;
  const void* p;  // uint8 (boolean) or float (additive)
  int64_t sb, sh, si, sj;
};

struct Problem {
  int64_t B, H, Hkv, Lq, Lk, D;
  float scale;
  bool causal;
  float dropout_p;  // [0, 1)
  uint64_t seed;
  MaskRef mask;
};

// Tile sizes. Bq query rows share each K/V tile read; Bk keys per online-softmax
// step. 128 x 128 with D = 64 keeps the kq forward's Q^T, S^T and O tiles (~130 KiB)
// in L2 and reads K and V once per 128 queries (64-query blocks measured 0-7% slower
// on the bench shapes, 256-key blocks no faster).
constexpr int64_t kBq = 128;
constexpr int64_t kBk = 128;
constexpr int64_t kMaxD = 256;

// out, lse written (lse contiguous (B, H, Lq)). Fully masked rows: out 0, lse -inf.
void forward(const Problem& pr, View4 q, View4 k, View4 v, MutView4 out, float* lse);
// dq, dk, dv written (all three overwritten). lse as forward wrote it.
void backward(const Problem& pr, View4 q, View4 k, View4 v, View4 out, View4 dout,
              const float* lse, int64_t lse_sb, int64_t lse_sh, int64_t lse_si, MutView4 dq,
              MutView4 dk, MutView4 dv);

// Forward variants, kept selectable for benchmarks and as a cross-check (STYLE 7):
//   "qk" (1): S = Q K^T, K^T and V packed per (query block, key block)
//   "kq" (2): S^T = K Q^T, K and (D % 16 == 0) V read in place; Q^T packed once per
//             task. Default: 1.2-2.5x variant 1 on every bench shape (nnforge bench
//             attention --variants, 2 threads).
const char* forward_variant();
void set_forward_variant(const char* name);  // throws std::invalid_argument

// ---- per-ISA pieces (attention_fwd_{qk,kq}.per_isa.cpp, attention_bwd.per_isa.cpp) ----
// One task = one (b, h, query block) of forward; tasks are independent.
NNF_DECLARE_DISPATCH(void (*)(const Problem&, const View4&, const View4&, const View4&,
                              const MutView4&, float*, int64_t ntasks, int nt),
                     forward_qk_stub);
NNF_DECLARE_DISPATCH(void (*)(const Problem&, const View4&, const View4&, const View4&,
                              const MutView4&, float*, int64_t ntasks, int nt),
                     forward_kq_stub);
// One task = one (b, kv head, key chunk): dK, dV of the chunk's keys written, and
// dQ contributions of those keys written into dq_part[chunk] ((B, H, Lq, Dp) each; every
// chunk owns at least one key block, so every partial is fully written).
struct BackwardBuffers {
  const float* lse;
  int64_t lse_sb, lse_sh, lse_si;
  float* dq_part;      // (nchunks, B, H, Lq, Dp)
  int64_t nchunks, dp;
};
// Arguments: q, k, v, out, dout (out only for FlashAttention-2's delta_i = dout_i . out_i,
// formed per query block as the task meets it), then dq, dk, dv. With one chunk a task
// also writes dq = scale * its partial for its heads (still in cache); with several,
// dq_reduce_stub sums the chunks afterwards.
NNF_DECLARE_DISPATCH(void (*)(const Problem&, const View4&, const View4&, const View4&,
                              const View4&, const View4&, const BackwardBuffers&,
                              const MutView4&, const MutView4&, const MutView4&, int nt),
                     backward_kv_stub);
// dq = scale * the chunk partials summed in chunk order; rows split across threads.
NNF_DECLARE_DISPATCH(void (*)(const Problem&, const BackwardBuffers&, const MutView4&, int nt),
                     dq_reduce_stub);

}  // namespace attn
}  // namespace nnf
