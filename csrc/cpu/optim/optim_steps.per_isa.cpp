// Fused optimizer updates: one pass over p, g and the state per step.
//
// Each kernel reads every buffer once and writes every updated one once, in the
// order of operations of torch.optim's _single_tensor_* algorithms (torch 2.x),
// so trajectories match PyTorch to float32 rounding. Loop-invariant options are
// template parameters so that each inner loop is branch-free and vectorises
// (`#pragma omp simd`, AVX-512 build: zmm). Buffers never alias (the binding
// refuses overlapping arrays), hence __restrict.
//
// Optional epilogues (pruning mask, bf16 copy) run on each chunk right after its update,
// while the chunk (kOptChunk elements per stream) is still cache-resident: no extra pass
// over memory, and the update loops themselves are the very same code with or without
// them, so an all-ones mask gives bit-identical results to none. (Fusing them into the
// update loops changed the compiler's FMA contraction of AdamW's decay and broke that.)
//
// Non-temporal stores were not used: every written line was just read (in-place
// update), so they would not save the read-for-ownership traffic they exist for.
#include <math.h>
#include <string.h>

#include "cpu/optim/optim_isa.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace {

// ---- SGD (torch.optim.SGD) -----------------------------------------------------
// kMom: 0 = no momentum, 1 = first step (buf = d, no dampening), 2 = running buf.
template <bool kZeroGrad, bool kWd, int kMom, bool kNesterov>
void sgd_chunk(const SgdScalars& s, float* __restrict p, float* __restrict g,
               float* __restrict buf, int64_t n) {
  const float gs = s.grad_scale, wd = s.weight_decay, mom = s.momentum,
              omd = s.one_minus_dampening, nlr = s.neg_lr;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float d = gs * g[i];
    if (kZeroGrad) g[i] = 0.0f;
    if (kWd) d = d + wd * p[i];
    if (kMom == 1) {
      buf[i] = d;
      if (kNesterov) d = d + mom * d;
    } else if (kMom == 2) {
      const float b = mom * buf[i] + omd * d;
      buf[i] = b;
      d = kNesterov ? d + mom * b : b;
    }
    p[i] = p[i] + nlr * d;
  }
}

// ---- Adam / AdamW (torch.optim.Adam, decoupled_weight_decay for AdamW) ---------
template <bool kZeroGrad, bool kL2, bool kAmsgrad>
void adam_chunk(const AdamScalars& s, float* __restrict p, float* __restrict g,
                float* __restrict m, float* __restrict v, float* __restrict vmax, int64_t n) {
  const float gs = s.grad_scale, wd = s.weight_decay, decay = s.param_decay,
              omb1 = s.one_minus_beta1, b2 = s.beta2, omb2 = s.one_minus_beta2,
              inv_bc2s = s.inv_bias_correction2_sqrt, eps = s.eps, nss = s.neg_step_size;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float d = gs * g[i];
    if (kZeroGrad) g[i] = 0.0f;
    float pi = p[i];
    if (kL2) d = d + wd * pi;
    else pi = pi * decay;  // decay == 1 (exact no-op) without decoupled decay
    const float mi = m[i] + omb1 * (d - m[i]);  // exp_avg.lerp_(grad, 1 - beta1)
    const float vi = b2 * v[i] + omb2 * (d * d);
    m[i] = mi;
    v[i] = vi;
    float vd = vi;
    if (kAmsgrad) {
      vd = vmax[i] > vi ? vmax[i] : vi;
      vmax[i] = vd;
    }
    // torch divides by sqrt(bias_correction2); multiplying by its reciprocal differs by
    // <= 1 ulp and drops one of the three divider-unit ops (sqrt, div, div) that bound
    // this loop when the buffers are cache-resident (~1.3-1.5 G elem/s/core before).
    const float denom = sqrtf(vd) * inv_bc2s + eps;
    p[i] = pi + nss * (mi / denom);
  }
}

// ---- RMSprop (torch.optim.RMSprop) ---------------------------------------------
template <bool kZeroGrad, bool kWd, bool kCentered, bool kMomentum>
void rmsprop_chunk(const RmspropScalars& s, float* __restrict p, float* __restrict g,
                   float* __restrict sq, float* __restrict buf, float* __restrict gavg,
                   int64_t n) {
  const float gs = s.grad_scale, wd = s.weight_decay, alpha = s.alpha,
              oma = s.one_minus_alpha, eps = s.eps, mom = s.momentum, nlr = s.neg_lr;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float d = gs * g[i];
    if (kZeroGrad) g[i] = 0.0f;
    if (kWd) d = d + wd * p[i];
    const float sa = alpha * sq[i] + oma * (d * d);
    sq[i] = sa;
    float avg;
    if (kCentered) {
      const float ga = gavg[i] + oma * (d - gavg[i]);  // grad_avg.lerp_(grad, 1 - alpha)
      gavg[i] = ga;
      avg = sqrtf(sa - ga * ga) + eps;
    } else {
      avg = sqrtf(sa) + eps;
    }
    if (kMomentum) {
      const float b = mom * buf[i] + d / avg;
      buf[i] = b;
      p[i] = p[i] + nlr * b;
    } else {
      p[i] = p[i] + nlr * (d / avg);
    }
  }
}

// ---- Adagrad (torch.optim.Adagrad) ---------------------------------------------
template <bool kZeroGrad, bool kWd>
void adagrad_chunk(const AdagradScalars& s, float* __restrict p, float* __restrict g,
                   float* __restrict sum, int64_t n) {
  const float gs = s.grad_scale, wd = s.weight_decay, eps = s.eps, nclr = s.neg_clr;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float d = gs * g[i];
    if (kZeroGrad) g[i] = 0.0f;
    if (kWd) d = d + wd * p[i];
    const float ss = sum[i] + d * d;
    sum[i] = ss;
    p[i] = p[i] + nclr * (d / (sqrtf(ss) + eps));
  }
}

// ---- epilogues ---------------------------------------------------------------------
// x[i] = 0 where mask[i] == 0 (pruned weights and their state stay exactly 0).
void zero_pruned(const uint8_t* __restrict mask, float* __restrict x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] = mask[i] == 0 ? 0.0f : x[i];
}

// out[i] = bfloat16 bits of p[i], round to nearest even; NaN -> the quiet NaN of its
// sign (0x7FC0 / 0xFFC0, as ml_dtypes / Eigen write it).
void bf16_copy(const float* __restrict p, uint16_t* __restrict out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    memcpy(&u, &p[i], sizeof u);
    const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    const uint32_t nan = ((u >> 16) & 0x8000u) | 0x7FC0u;
    out[i] = uint16_t((u & 0x7FFFFFFFu) > 0x7F800000u ? nan : rounded);
  }
}

// Runs `fn` on every chunk with its tensor's pointers offset to the chunk, then the
// chunk's epilogues (OptTensor::mask, OptTensor::bf16).
template <typename Fn>
inline void for_chunks(const OptChunk* chunks, int64_t count, Fn fn) {
  for (int64_t c = 0; c < count; ++c) {
    const OptTensor& t = *chunks[c].t;
    const int64_t o = chunks[c].off, n = chunks[c].len;
    float* const bufs[4] = {t.p + o, t.s0 ? t.s0 + o : nullptr, t.s1 ? t.s1 + o : nullptr,
                            t.s2 ? t.s2 + o : nullptr};
    fn(bufs[0], t.g + o, bufs[1], bufs[2], bufs[3], n);
    if (t.mask)
      for (float* x : bufs)
        if (x) zero_pruned(t.mask + o, x, n);
    if (t.bf16) bf16_copy(bufs[0], t.bf16 + o, n);
  }
}

}  // namespace

void sgd_chunks(const SgdScalars& s, const OptChunk* chunks, int64_t count) {
  using Fn = void (*)(const SgdScalars&, float*, float*, float*, int64_t);
  // index = zero_grad*12 + wd*6 + mom*2 + nesterov
  static const Fn table[24] = {
      sgd_chunk<0, 0, 0, 0>, sgd_chunk<0, 0, 0, 1>, sgd_chunk<0, 0, 1, 0>, sgd_chunk<0, 0, 1, 1>,
      sgd_chunk<0, 0, 2, 0>, sgd_chunk<0, 0, 2, 1>, sgd_chunk<0, 1, 0, 0>, sgd_chunk<0, 1, 0, 1>,
      sgd_chunk<0, 1, 1, 0>, sgd_chunk<0, 1, 1, 1>, sgd_chunk<0, 1, 2, 0>, sgd_chunk<0, 1, 2, 1>,
      sgd_chunk<1, 0, 0, 0>, sgd_chunk<1, 0, 0, 1>, sgd_chunk<1, 0, 1, 0>, sgd_chunk<1, 0, 1, 1>,
      sgd_chunk<1, 0, 2, 0>, sgd_chunk<1, 0, 2, 1>, sgd_chunk<1, 1, 0, 0>, sgd_chunk<1, 1, 0, 1>,
      sgd_chunk<1, 1, 1, 0>, sgd_chunk<1, 1, 1, 1>, sgd_chunk<1, 1, 2, 0>, sgd_chunk<1, 1, 2, 1>};
  const int mom = !s.has_momentum ? 0 : (s.first_step ? 1 : 2);
  const Fn fn = table[s.zero_grad * 12 + s.has_weight_decay * 6 + mom * 2 + (s.has_momentum && s.nesterov)];
  for_chunks(chunks, count, [&](float* p, float* g, float* s0, float*, float*, int64_t n) {
    fn(s, p, g, s0, n);
  });
}

void adam_chunks(const AdamScalars& s, const OptChunk* chunks, int64_t count) {
  using Fn = void (*)(const AdamScalars&, float*, float*, float*, float*, float*, int64_t);
  static const Fn table[8] = {adam_chunk<0, 0, 0>, adam_chunk<0, 0, 1>, adam_chunk<0, 1, 0>,
                              adam_chunk<0, 1, 1>, adam_chunk<1, 0, 0>, adam_chunk<1, 0, 1>,
                              adam_chunk<1, 1, 0>, adam_chunk<1, 1, 1>};
  const Fn fn = table[s.zero_grad * 4 + s.l2 * 2 + s.amsgrad];
  for_chunks(chunks, count, [&](float* p, float* g, float* m, float* v, float* vmax, int64_t n) {
    fn(s, p, g, m, v, vmax, n);
  });
}

void rmsprop_chunks(const RmspropScalars& s, const OptChunk* chunks, int64_t count) {
  using Fn = void (*)(const RmspropScalars&, float*, float*, float*, float*, float*, int64_t);
  // index = zero_grad*8 + wd*4 + centered*2 + momentum
  static const Fn table[16] = {
      rmsprop_chunk<0, 0, 0, 0>, rmsprop_chunk<0, 0, 0, 1>, rmsprop_chunk<0, 0, 1, 0>,
      rmsprop_chunk<0, 0, 1, 1>, rmsprop_chunk<0, 1, 0, 0>, rmsprop_chunk<0, 1, 0, 1>,
      rmsprop_chunk<0, 1, 1, 0>, rmsprop_chunk<0, 1, 1, 1>, rmsprop_chunk<1, 0, 0, 0>,
      rmsprop_chunk<1, 0, 0, 1>, rmsprop_chunk<1, 0, 1, 0>, rmsprop_chunk<1, 0, 1, 1>,
      rmsprop_chunk<1, 1, 0, 0>, rmsprop_chunk<1, 1, 0, 1>, rmsprop_chunk<1, 1, 1, 0>,
      rmsprop_chunk<1, 1, 1, 1>};
  const Fn fn = table[s.zero_grad * 8 + s.has_weight_decay * 4 + s.centered * 2 + s.has_momentum];
  for_chunks(chunks, count, [&](float* p, float* g, float* sq, float* buf, float* gavg, int64_t n) {
    fn(s, p, g, sq, buf, gavg, n);
  });
}

void adagrad_chunks(const AdagradScalars& s, const OptChunk* chunks, int64_t count) {
  using Fn = void (*)(const AdagradScalars&, float*, float*, float*, int64_t);
  static const Fn table[4] = {adagrad_chunk<0, 0>, adagrad_chunk<0, 1>, adagrad_chunk<1, 0>,
                              adagrad_chunk<1, 1>};
  const Fn fn = table[s.zero_grad * 2 + s.has_weight_decay];
  for_chunks(chunks, count, [&](float* p, float* g, float* sum, float*, float*, int64_t n) {
    fn(s, p, g, sum, n);
  });
}

NNF_REGISTER_PER_ISA(optim::sgd_chunks_stub, sgd_chunks);
NNF_REGISTER_PER_ISA(optim::adam_chunks_stub, adam_chunks);
NNF_REGISTER_PER_ISA(optim::rmsprop_chunks_stub, rmsprop_chunks);
NNF_REGISTER_PER_ISA(optim::adagrad_chunks_stub, adagrad_chunks);

}  // namespace NNF_ISA_NS
}  // namespace nnf
