// bf16 GEMM frame (interface in bf16.h): the variant table, the widening path and the
// blocked loop nest around the bf16-pair micro-kernels (bf16_kernel.h).
//
// Widening path (bf16_widen_<isa>, every CPU): A and B are copied to float32 -- bf16
// widened exactly, float32 rounded to bf16 when the precision is bf16 -- and the float32
// GEMM of the active ISA runs on them (bf16 out: into a float32 work matrix first).
//
// Pair-kernel path (avx512bf16_*): GotoBLAS loop nest as gemm.cpp, packing A and B into
// bf16 pairs, accumulating every k-block into a float32 work matrix padded to whole
// tiles; the epilogue (alpha, beta, bias, activation, the bf16 rounding of out) runs
// once per element at the end. Threads own disjoint slabs of whole MR-row panels, KC
// depends on k only: bitwise identical results for any thread count.
#include <omp.h>

#include <algorithm>
#include <stdexcept>

#include "common/aligned_buffer.h"
#include "common/parallel_errors.h"
#include "common/threads.h"
#include "common/variant_table.h"
#include "cpu/gemm/activation_scalar.h"
#include "cpu/gemm/bf16.h"
#include "cpu/gemm/bf16_kernel.h"
#include "cpu/gemm/bf16_scalar.h"

namespace nnf {
namespace {

using gemm::Bf16KernelConfig;

VariantTable<Bf16KernelConfig>& table() {
  static VariantTable<Bf16KernelConfig> t("gemm", "bf16", "bf16 GEMM", "NNFORGE_BF16_GEMM_VARIANT");
  return t;
}

// The widening path at every ISA level, so it stays selectable where a pair kernel is
// the default ("bf16_widen_avx512" on an AVX512_BF16 CPU).
constexpr Bf16KernelConfig kWidenGeneric{"bf16_widen_generic", Slot::generic, 0, 0, 0, 0, 0, 0, nullptr};
constexpr Bf16KernelConfig kWidenAvx2{"bf16_widen_avx2", Slot::avx2, 0, 0, 0, 0, 0, 0, nullptr};
constexpr Bf16KernelConfig kWidenAvx512{"bf16_widen_avx512", Slot::avx512, 0, 0, 0, 0, 0, 0, nullptr};
[[maybe_unused]] const bool kWidenRegistered = gemm::register_bf16_variant(kWidenGeneric) &&
                                               gemm::register_bf16_variant(kWidenAvx2) &&
                                               gemm::register_bf16_variant(kWidenAvx512);

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
inline int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

// Element (i, j) of an operand as float32: bf16 widened; float32 rounded to bf16 when
// `round` (the bf16 precision), else as is.
inline float load_f32(const AnyMatRef& r, int64_t i, int64_t j, bool round) {
  const int64_t off = i * r.rs + j * r.cs;
  if (r.type == ElemType::bf16) return bf16::to_f32(static_cast<const uint16_t*>(r.data)[off]);
  const float x = static_cast<const float*>(r.data)[off];
  return round ? bf16::round_f32(x) : x;
}

// Element (i, j) as bf16 bits (float32 rounded to nearest even).
inline uint32_t load_bits(const AnyMatRef& r, int64_t i, int64_t j) {
  const int64_t off = i * r.rs + j * r.cs;
  if (r.type == ElemType::bf16) return static_cast<const uint16_t*>(r.data)[off];
  return bf16::from_f32(static_cast<const float*>(r.data)[off]);
}

// out(i, j) = act(alpha*w(i, j) + beta*out(i, j) + bias) for rows [r0, r1), all n columns;
// w row-major with row stride ldw; beta == 0: out is not read. bf16 out is rounded here.
void finish_rows(int64_t r0, int64_t r1, int64_t n, float alpha, const float* w, int64_t ldw,
                 float beta, const AnyMutMatRef& c, const GemmEpilogue& ep) {
  const bool bf = c.type == ElemType::bf16;
  for (int64_t i = r0; i < r1; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const int64_t off = i * c.rs + j * c.cs;
      float v = alpha * w[i * ldw + j];
      if (beta != 0.0f) {
        const float old = bf ? bf16::to_f32(static_cast<uint16_t*>(c.data)[off])
                             : static_cast<float*>(c.data)[off];
        v += beta * old;
      }
      if (ep.bias_mode == BiasMode::per_row) v += ep.bias[i * ep.bias_stride];
      if (ep.bias_mode == BiasMode::per_column) v += ep.bias[j * ep.bias_stride];
      v = gemm::activate_scalar(v, int(ep.activation));
      if (bf) static_cast<uint16_t*>(c.data)[off] = bf16::from_f32(v);
      else static_cast<float*>(c.data)[off] = v;
    }
}

struct WidenScratch {
  AlignedBuffer a, b, c;
};
WidenScratch& widen_scratch() {
  static thread_local WidenScratch s;
  return s;
}

// A float32 operand read as is needs no copy; anything else is copied row-major.
MatRef widened(const AnyMatRef& r, int64_t rows, int64_t cols, bool round, AlignedBuffer& buf) {
  if (r.type == ElemType::f32 && !round) return MatRef{static_cast<const float*>(r.data), r.rs, r.cs};
  float* d = buf.floats(size_t(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) d[i * cols + j] = load_f32(r, i, j, round);
  return MatRef{d, cols, 1};
}

void gemm_widen(int64_t m, int64_t n, int64_t k, float alpha, const AnyMatRef& a, const AnyMatRef& b,
                float beta, const AnyMutMatRef& c, const GemmEpilogue& ep, bool round, int nthreads) {
  WidenScratch& s = widen_scratch();
  const MatRef aw = widened(a, m, k, round, s.a), bw = widened(b, k, n, round, s.b);
  if (c.type == ElemType::f32) {
    sgemm(m, n, k, alpha, aw, bw, beta, MutMatRef{static_cast<float*>(c.data), c.rs, c.cs}, ep, nthreads);
    return;
  }
  float* w = s.c.floats(size_t(m * n));
  sgemm(m, n, k, 1.0f, aw, bw, 0.0f, MutMatRef{w, n, 1}, GemmEpilogue{}, nthreads);
  finish_rows(0, m, n, alpha, w, n, beta, c, ep);
}

// Per-thread packing buffers of the pair-kernel path.
struct PairScratch {
  AlignedBuffer a, b;
};
PairScratch& pair_scratch() {
  static thread_local PairScratch s;
  return s;
}

// A rows [i0, i0+rows) x k range [p0, p0+kc) -> kp x MR pairs (zero-padded rows and k).
void pack_a_pairs(const AnyMatRef& a, int64_t i0, int64_t rows, int64_t p0, int64_t kc, int mr,
                  uint32_t* dst) {
  const int64_t kp = ceil_div(kc, 2);
  for (int64_t q = 0; q < kp; ++q) {
    const bool hi = 2 * q + 1 < kc;
    for (int64_t i = 0; i < mr; ++i) {
      uint32_t v = 0;
      if (i < rows) {
        v = load_bits(a, i0 + i, p0 + 2 * q);
        if (hi) v |= load_bits(a, i0 + i, p0 + 2 * q + 1) << 16;
      }
      dst[q * mr + i] = v;
    }
  }
}

// B k range [p0, p0+kc) x columns [j0, j0+cols) -> kp x NR pairs (zero-padded).
void pack_b_pairs(const AnyMatRef& b, int64_t p0, int64_t kc, int64_t j0, int64_t cols, int nr,
                  uint32_t* dst) {
  const int64_t kp = ceil_div(kc, 2);
  for (int64_t q = 0; q < kp; ++q) {
    const bool hi = 2 * q + 1 < kc;
    for (int64_t j = 0; j < nr; ++j) {
      uint32_t v = 0;
      if (j < cols) {
        v = load_bits(b, p0 + 2 * q, j0 + j);
        if (hi) v |= load_bits(b, p0 + 2 * q + 1, j0 + j) << 16;
      }
      dst[q * nr + j] = v;
    }
  }
}

// Rows [r0, r1) of C (r0 a multiple of MR), every k-block, into the work matrix w
// (row stride ldw, padded to whole tiles), then their epilogue.
void pair_slab(const Bf16KernelConfig& cfg, int64_t kcb, int64_t r0, int64_t r1, int64_t n, int64_t k,
               float alpha, const AnyMatRef& a, const AnyMatRef& b, float beta, const AnyMutMatRef& c,
               const GemmEpilogue& ep, float* w, int64_t ldw) {
  const int MR = cfg.mr, NR = cfg.nr;
  const int64_t MC = std::min<int64_t>(cfg.mc, round_up(r1 - r0, MR));
  const int64_t NC = std::min<int64_t>(cfg.nc, round_up(n, NR));
  const int64_t KP = ceil_div(kcb, 2);
  PairScratch& s = pair_scratch();
  uint32_t* bpack = static_cast<uint32_t*>(static_cast<void*>(s.b.floats(size_t(KP * NC))));
  uint32_t* apack = static_cast<uint32_t*>(static_cast<void*>(s.a.floats(size_t(KP * MC))));
  for (int64_t jc = 0; jc < n; jc += NC) {
    const int64_t nc = std::min(NC, n - jc), nbp = ceil_div(nc, NR);
    for (int64_t pc = 0; pc < k; pc += kcb) {
      const int64_t kc = std::min(kcb, k - pc), kp = ceil_div(kc, 2);
      for (int64_t jp = 0; jp < nbp; ++jp)
        pack_b_pairs(b, pc, kc, jc + jp * NR, std::min<int64_t>(NR, nc - jp * NR), NR,
                     bpack + jp * NR * kp);
      for (int64_t ic = r0; ic < r1; ic += MC) {
        const int64_t mc = std::min(MC, r1 - ic), nap = ceil_div(mc, MR);
        for (int64_t ip = 0; ip < nap; ++ip)
          pack_a_pairs(a, ic + ip * MR, std::min<int64_t>(MR, mc - ip * MR), pc, kc, MR,
                       apack + ip * MR * kp);
        for (int64_t jp = 0; jp < nbp; ++jp)
          for (int64_t ip = 0; ip < nap; ++ip)
            cfg.ukr(kp, apack + ip * MR * kp, bpack + jp * NR * kp,
                    w + (ic + ip * MR) * ldw + jc + jp * NR, ldw, pc != 0);
      }
    }
  }
  finish_rows(r0, r1, n, alpha, w, ldw, beta, c, ep);
}

void gemm_pairs(const Bf16KernelConfig& cfg, int64_t m, int64_t n, int64_t k, float alpha,
                const AnyMatRef& a, const AnyMatRef& b, float beta, const AnyMutMatRef& c,
                const GemmEpilogue& ep, int nt) {
  const int MR = cfg.mr;
  // Equal, even k-blocks from k alone (thread-count independent).
  const int64_t kcb = round_up(ceil_div(k, ceil_div(k, cfg.kc)), 2);
  const int64_t ldw = round_up(n, cfg.nr);
  float* w = widen_scratch().c.floats(size_t(round_up(m, MR) * ldw));
  const int64_t nap = ceil_div(m, MR);
  nt = int(std::max<int64_t>(1, std::min<int64_t>(nt, nap)));
  auto slab = [&](int t) {
    const int64_t lo = nap * t / nt * MR, hi = std::min(m, nap * (t + 1) / nt * MR);
    if (hi > lo) pair_slab(cfg, kcb, lo, hi, n, k, alpha, a, b, beta, c, ep, w, ldw);
  };
  if (nt <= 1) {
    slab(0);
    return;
  }
  ParallelErrors errors;
#pragma omp parallel num_threads(nt)
  for (int t = omp_get_thread_num(); t < nt; t += omp_get_num_threads()) errors.run([&] { slab(t); });
  errors.rethrow();
}

}  // namespace

namespace gemm {
bool register_bf16_variant(const Bf16KernelConfig& cfg) {
  table().add(cfg);
  return true;
}
}  // namespace gemm

std::vector<std::string> bf16_gemm_variants() { return table().runnable_names(); }
std::string get_bf16_gemm_variant() { return table().forced_name(); }
void set_bf16_gemm_variant(const std::string& name) { table().force(name); }

void gemm_bf16(int64_t m, int64_t n, int64_t k, float alpha, AnyMatRef a, AnyMatRef b, float beta,
               AnyMutMatRef c, const GemmEpilogue& ep, Precision precision, int nthreads) {
  if (m < 0 || n < 0 || k < 0)
    throw std::invalid_argument("gemm_bf16: negative size m=" + std::to_string(m) +
                                " n=" + std::to_string(n) + " k=" + std::to_string(k));
  if (m == 0 || n == 0) return;
  // A bf16 operand makes the product a bf16 one: the float32 operand is rounded too.
  const bool round = precision == Precision::bf16 || a.type == ElemType::bf16 || b.type == ElemType::bf16;
  const Bf16KernelConfig& cfg = table().pick();
  if (!round || !cfg.ukr || k == 0 || alpha == 0.0f) {
    gemm_widen(m, n, k, alpha, a, b, beta, c, ep, round, nthreads);
    return;
  }
  const int nt = nthreads > 0 ? nthreads : threads_for(2.0 * double(m) * double(n) * double(k), 1.0e6);
  gemm_pairs(cfg, m, n, k, alpha, a, b, beta, c, ep, nt);
}

}  // namespace nnf
