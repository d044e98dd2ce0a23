// Fused optimizer updates: one pass over p, g and the state per step.
//
// Each kernel reads every buffer once and writes every updated one once, in the
// order of operations of torch.optim's _single_tensor_* algorithms (torch 2.x),
// so trajectories match PyTorch to float32 rounding. Loop-invariant options are
// template parameters so that each inner loop is branch-free and vectorises
// (`#pragma omp simd`, AVX-512 build: zmm). Buffers never alias (the binding
// refuses overlapping arrays), hence __restrict.
//
// Optional per-element epilogue (template flags, so a step without them runs the very
// same loop as before): kMask stores 0 to the parameter and its state where the pruning
// mask is 0; kBf16 also stores the new parameter's bfloat16 bits (mixed precision).
//
// Non-temporal stores were not used: every written line was just read (in-place
// update), so they would not save the read-for-ownership traffic they exist for.
#include <math.h>
#include <string.h>

#include <array>
#include <utility>

#include "cpu/optim/optim_isa.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace {

// float -> bfloat16 bits, round to nearest even; NaN -> the quiet NaN of its sign
// (0x7FC0 / 0xFFC0, as ml_dtypes / Eigen write it).
inline uint16_t bf16_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = (u >> 16 & 0x8000u) | 0x7FC0u;
  return uint16_t((u & 0x7FFFFFFFu) > 0x7F800000u ? nan : rounded);
}

// A value about to be stored for element i: 0 where the mask prunes it.
template <bool kMask>
inline float kept(const uint8_t* __restrict mask, int64_t i, float x) {
  return kMask && mask[i] == 0 ? 0.0f : x;
}

// Stores the updated parameter (masked) and its bf16 copy.
template <bool kMask, bool kBf16>
inline void store_param(float* __restrict p, uint16_t* __restrict b16, const uint8_t* __restrict mask,
                        int64_t i, float x) {
  x = kept<kMask>(mask, i, x);
  p[i] = x;
  if (kBf16) b16[i] = bf16_bits(x);
}

// The per-element epilogue pointers of one chunk.
struct Epilogue {
  const uint8_t* mask;
  uint16_t* bf16;
};

// ---- SGD (torch.optim.SGD) -----------------------------------------------------
// kMom: 0 = no momentum, 1 = first step (buf = d, no dampening), 2 = running buf.
template <bool kZeroGrad, bool kWd, int kMom, bool kNesterov, bool kMask, bool kBf16>
void sgd_chunk(const SgdScalars& s, float* __restrict p, float* __restrict g,
               float* __restrict buf, Epilogue e, int64_t n) {
  const float gs = s.grad_scale, wd = s.weight_decay, mom = s.momentum,
              omd = s.one_minus_dampening, nlr = s.neg_lr;
  const uint8_t* __restrict mask = e.mask;
  uint16_t* __restrict b16 = e.bf16;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float d = gs * g[i];
    if (kZeroGrad) g[i] = 0.0f;
    if (kWd) d = d + wd * p[i];
    if (kMom == 1) {
      buf[i] = kept<kMask>(mask, i, d);
      if (kNesterov) d = d + mom * d;
    } else if (kMom == 2) {
      const float b = mom * buf[i] + omd * d;
      buf[i] = kept<kMask>(mask, i, b);
      d = kNesterov ? d + mom * b : b;
    }
    store_param<kMask, kBf16>(p, b16, mask, i, p[i] + nlr * d);
  }
}

// ---- Adam / AdamW (torch.optim.Adam, decoupled_weight_decay for AdamW) ---------
template <bool kZeroGrad, bool kL2, bool kAmsgrad, bool kMask, bool kBf16>
void adam_chunk(const AdamScalars& s, float* __restrict p, float* __restrict g,
                float* __restrict m, float* __restrict v, float* __restrict vmax, Epilogue e,
                int64_t n) {
  const float gs = s.grad_scale, wd = s.weight_decay, decay = s.param_decay,
              omb1 = s.one_minus_beta1, b2 = s.beta2, omb2 = s.one_minus_beta2,
              inv_bc2s = s.inv_bias_correction2_sqrt, eps = s.eps, nss = s.neg_step_size;
  const uint8_t* __restrict mask = e.mask;
  uint16_t* __restrict b16 = e.bf16;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float d = gs * g[i];
    if (kZeroGrad) g[i] = 0.0f;
    float pi = p[i];
    if (kL2) d = d + wd * pi;
    else pi = pi * decay;  // decay == 1 (exact no-op) without decoupled decay
    const float mi = m[i] + omb1 * (d - m[i]);  // exp_avg.lerp_(grad, 1 - beta1)
    const float vi = b2 * v[i] + omb2 * (d * d);
    m[i] = kept<kMask>(mask, i, mi);
    v[i] = kept<kMask>(mask, i, vi);
    float vd = vi;
    if (kAmsgrad) {
      vd = vmax[i] > vi ? vmax[i] : vi;
      vmax[i] = kept<kMask>(mask, i, vd);
    }
    // torch divides by sqrt(bias_correction2); multiplying by its reciprocal differs by
    // <= 1 ulp and drops one of the three divider-unit ops (sqrt, div, div) that bound
    // this loop when the buffers are cache-resident (~1.3-1.5 G elem/s/core before).
    const float denom = sqrtf(vd) * inv_bc2s + eps;
    store_param<kMask, kBf16>(p, b16, mask, i, pi + nss * (mi / denom));
  }
}

// ---- RMSprop (torch.optim.RMSprop) ---------------------------------------------
template <bool kZeroGrad, bool kWd, bool kCentered, bool kMomentum, bool kMask, bool kBf16>
void rmsprop_chunk(const RmspropScalars& s, float* __restrict p, float* __restrict g,
                   float* __restrict sq, float* __restrict buf, float* __restrict gavg,
                   Epilogue e, int64_t n) {
  const float gs = s.grad_scale, wd = s.weight_decay, alpha = s.alpha,
              oma = s.one_minus_alpha, eps = s.eps, mom = s.momentum, nlr = s.neg_lr;
  const uint8_t* __restrict mask = e.mask;
  uint16_t* __restrict b16 = e.bf16;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float d = gs * g[i];
    if (kZeroGrad) g[i] = 0.0f;
    if (kWd) d = d + wd * p[i];
    const float sa = alpha * sq[i] + oma * (d * d);
    sq[i] = kept<kMask>(mask, i, sa);
    float avg;
    if (kCentered) {
      const float ga = gavg[i] + oma * (d - gavg[i]);  // grad_avg.lerp_(grad, 1 - alpha)
      gavg[i] = kept<kMask>(mask, i, ga);
      avg = sqrtf(sa - ga * ga) + eps;
    } else {
      avg = sqrtf(sa) + eps;
    }
    if (kMomentum) {
      const float b = mom * buf[i] + d / avg;
      buf[i] = kept<kMask>(mask, i, b);
      store_param<kMask, kBf16>(p, b16, mask, i, p[i] + nlr * b);
    } else {
      store_param<kMask, kBf16>(p, b16, mask, i, p[i] + nlr * (d / avg));
    }
  }
}

// ---- Adagrad (torch.optim.Adagrad) ---------------------------------------------
template <bool kZeroGrad, bool kWd, bool kMask, bool kBf16>
void adagrad_chunk(const AdagradScalars& s, float* __restrict p, float* __restrict g,
                   float* __restrict sum, Epilogue e, int64_t n) {
  const float gs = s.grad_scale, wd = s.weight_decay, eps = s.eps, nclr = s.neg_clr;
  const uint8_t* __restrict mask = e.mask;
  uint16_t* __restrict b16 = e.bf16;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float d = gs * g[i];
    if (kZeroGrad) g[i] = 0.0f;
    if (kWd) d = d + wd * p[i];
    const float ss = sum[i] + d * d;
    sum[i] = kept<kMask>(mask, i, ss);
    store_param<kMask, kBf16>(p, b16, mask, i, p[i] + nclr * (d / (sqrtf(ss) + eps)));
  }
}

// Runs `fn` on every chunk with its tensor's pointers offset to the chunk.
template <typename Fn>
inline void for_chunks(const OptChunk* chunks, int64_t count, Fn fn) {
  for (int64_t c = 0; c < count; ++c) {
    const OptTensor& t = *chunks[c].t;
    const int64_t o = chunks[c].off;
    const Epilogue e{t.mask ? t.mask + o : nullptr, t.bf16 ? t.bf16 + o : nullptr};
    fn(t.p + o, t.g + o, t.s0 ? t.s0 + o : nullptr, t.s1 ? t.s1 + o : nullptr,
       t.s2 ? t.s2 + o : nullptr, e, chunks[c].len);
  }
}

// Kernel tables: entry I is the instantiation whose flags are the mixed-radix digits
// of I (the order is each *_chunks' `index`); Kernel<I>::fn is that instantiation.
template <typename Fn, template <int> class Kernel, size_t... I>
constexpr std::array<Fn, sizeof...(I)> table_of(std::index_sequence<I...>) {
  return {{Kernel<int(I)>::fn...}};
}

// digit k (radix 2 except SGD's momentum, radix 3) of a table index
constexpr bool bit(int index, int k) { return (index >> k) & 1; }

// SGD index = nesterov + 2 * (mom + 3 * (wd + 2 * (zero_grad + 2 * (mask + 2 * bf16))))
template <int I>
struct SgdKernel {
  static constexpr int kRest = I / 6;
  static constexpr auto fn = sgd_chunk<bit(kRest, 1), bit(kRest, 0), (I / 2) % 3, bool(I % 2),
                                       bit(kRest, 2), bit(kRest, 3)>;
};
template <int I>  // index = amsgrad + 2 * l2 + 4 * zero_grad + 8 * mask + 16 * bf16
struct AdamKernel {
  static constexpr auto fn = adam_chunk<bit(I, 2), bit(I, 1), bit(I, 0), bit(I, 3), bit(I, 4)>;
};
template <int I>  // index = momentum + 2 * centered + 4 * wd + 8 * zero_grad + 16 * mask + 32 * bf16
struct RmspropKernel {
  static constexpr auto fn =
      rmsprop_chunk<bit(I, 3), bit(I, 2), bit(I, 1), bit(I, 0), bit(I, 4), bit(I, 5)>;
};
template <int I>  // index = wd + 2 * zero_grad + 4 * mask + 8 * bf16
struct AdagradKernel {
  static constexpr auto fn = adagrad_chunk<bit(I, 1), bit(I, 0), bit(I, 2), bit(I, 3)>;
};

}  // namespace

void sgd_chunks(const SgdScalars& s, const OptChunk* chunks, int64_t count) {
  using Fn = void (*)(const SgdScalars&, float*, float*, float*, Epilogue, int64_t);
  static constexpr auto table = table_of<Fn, SgdKernel>(std::make_index_sequence<96>());
  const int mom = !s.has_momentum ? 0 : (s.first_step ? 1 : 2);
  const int index = (s.has_momentum && s.nesterov) +
                    2 * (mom + 3 * (s.has_weight_decay + 2 * (s.zero_grad + 2 * (s.masked + 2 * s.bf16_copy))));
  const Fn fn = table[size_t(index)];
  for_chunks(chunks, count, [&](float* p, float* g, float* s0, float*, float*, Epilogue e, int64_t n) {
    fn(s, p, g, s0, e, n);
  });
}

void adam_chunks(const AdamScalars& s, const OptChunk* chunks, int64_t count) {
  using Fn = void (*)(const AdamScalars&, float*, float*, float*, float*, float*, Epilogue, int64_t);
  static constexpr auto table = table_of<Fn, AdamKernel>(std::make_index_sequence<32>());
  const Fn fn = table[size_t(s.amsgrad + 2 * s.l2 + 4 * s.zero_grad + 8 * s.masked + 16 * s.bf16_copy)];
  for_chunks(chunks, count, [&](float* p, float* g, float* m, float* v, float* vmax, Epilogue e, int64_t n) {
    fn(s, p, g, m, v, vmax, e, n);
  });
}

void rmsprop_chunks(const RmspropScalars& s, const OptChunk* chunks, int64_t count) {
  using Fn = void (*)(const RmspropScalars&, float*, float*, float*, float*, float*, Epilogue, int64_t);
  static constexpr auto table = table_of<Fn, RmspropKernel>(std::make_index_sequence<64>());
  const Fn fn = table[size_t(s.has_momentum + 2 * s.centered + 4 * s.has_weight_decay + 8 * s.zero_grad +
                             16 * s.masked + 32 * s.bf16_copy)];
  for_chunks(chunks, count, [&](float* p, float* g, float* sq, float* buf, float* gavg, Epilogue e, int64_t n) {
    fn(s, p, g, sq, buf, gavg, e, n);
  });
}

void adagrad_chunks(const AdagradScalars& s, const OptChunk* chunks, int64_t count) {
  using Fn = void (*)(const AdagradScalars&, float*, float*, float*, Epilogue, int64_t);
  static constexpr auto table = table_of<Fn, AdagradKernel>(std::make_index_sequence<16>());
  const Fn fn = table[size_t(s.has_weight_decay + 2 * s.zero_grad + 4 * s.masked + 8 * s.bf16_copy)];
  for_chunks(chunks, count, [&](float* p, float* g, float* sum, float*, float*, Epilogue e, int64_t n) {
    fn(s, p, g, sum, e, n);
  });
}

NNF_REGISTER_PER_ISA(optim::sgd_chunks_stub, sgd_chunks);
NNF_REGISTER_PER_ISA(optim::adam_chunks_stub, adam_chunks);
NNF_REGISTER_PER_ISA(optim::rmsprop_chunks_stub, rmsprop_chunks);
NNF_REGISTER_PER_ISA(optim::adagrad_chunks_stub, adagrad_chunks);

}  // namespace NNF_ISA_NS
}  // namespace nnf
