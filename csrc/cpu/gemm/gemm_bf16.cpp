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
#include "common/worker_pool.h"
#include "cpu/gemm/activation_scalar.h"
#include "cpu/gemm/bf16.h"
#include "cpu/gemm/bf16_convert_isa.h"
#include "cpu/gemm/bf16_kernel.h"
#include "cpu/gemm/bf16_scalar.h"
#include "cpu/gemm/gemm_variants.h"

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
// A unit column stride (the common case) runs as branch-free row loops the compiler
// vectorises, in the same operation order as the general loop (same bits).
void finish_rows(int64_t r0, int64_t r1, int64_t n, float alpha, const float* w, int64_t ldw,
                 float beta, const AnyMutMatRef& c, const GemmEpilogue& ep) {
  const bool bf = c.type == ElemType::bf16;
  if (c.cs == 1) {
    static thread_local AlignedBuffer row_buf;
    float* row = bf ? row_buf.floats(size_t(n)) : nullptr;
    const int act = int(ep.activation);
    for (int64_t i = r0; i < r1; ++i) {
      float* v = bf ? row : static_cast<float*>(c.data) + i * c.rs;
      const float* wi = w + i * ldw;
      if (beta == 0.0f) {
        for (int64_t j = 0; j < n; ++j) v[j] = alpha * wi[j];
      } else if (!bf) {
        for (int64_t j = 0; j < n; ++j) v[j] = alpha * wi[j] + beta * v[j];
      } else {
        const uint16_t* old = static_cast<const uint16_t*>(c.data) + i * c.rs;
        for (int64_t j = 0; j < n; ++j) v[j] = alpha * wi[j] + beta * bf16::to_f32(old[j]);
      }
      if (ep.bias_mode == BiasMode::per_row) {
        const float bi = ep.bias[i * ep.bias_stride];
        for (int64_t j = 0; j < n; ++j) v[j] += bi;
      } else if (ep.bias_mode == BiasMode::per_column) {
        for (int64_t j = 0; j < n; ++j) v[j] += ep.bias[j * ep.bias_stride];
      }
      if (act == 1) {
        for (int64_t j = 0; j < n; ++j) v[j] = v[j] < 0.0f ? 0.0f : v[j];
      } else if (act != 0) {
        for (int64_t j = 0; j < n; ++j) v[j] = gemm::activate_scalar(v[j], act);
      }
      if (bf) f32_to_bf16_stub.get()(n, row, static_cast<uint16_t*>(c.data) + i * c.rs);
    }
    return;
  }
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

// Per-thread packing buffers of the pair-kernel path (run: one converted row or column).
struct PairScratch {
  AlignedBuffer a, b, run_lo, run_hi;
};
PairScratch& pair_scratch() {
  static thread_local PairScratch s;
  return s;
}

// An operand seen as lanes x k: element (x, p) at data + x * xs + p * ps. A is (rows, k)
// with lanes = rows; B is (k, cols) with lanes = cols, so one packing routine serves both.
struct LaneView {
  const void* data;
  ElemType type;
  int64_t xs, ps;
};

// len elements from `first` on, `stride` apart, as bf16 bits: a unit-stride bf16 run in
// place, a unit-stride float32 run by the vector conversion (same bits as load_bits),
// anything else gathered one by one.
const uint16_t* bf16_run(const void* data, ElemType type, int64_t first, int64_t stride, int64_t len,
                         AlignedBuffer& buf) {
  if (type == ElemType::bf16 && stride == 1) return static_cast<const uint16_t*>(data) + first;
  uint16_t* out = static_cast<uint16_t*>(static_cast<void*>(buf.floats(size_t(len + 1) / 2)));
  if (stride == 1) {
    f32_to_bf16_stub.get()(len, static_cast<const float*>(data) + first, out);
    return out;
  }
  const AnyMatRef r{static_cast<const char*>(data) + first * (type == ElemType::bf16 ? 2 : 4), type, stride, 0};
  for (int64_t t = 0; t < len; ++t) out[t] = uint16_t(load_bits(r, t, 0));
  return out;
}

// Lanes [x0, x0+lanes) x k range [p0, p0+kc) -> kp x ld pairs: dst[q*ld + x] = (x, 2q) low,
// (x, 2q+1) high; lanes past `lanes` and the odd k tail are zero. Runs are read along
// whichever index has unit stride (k: a row of A, a column of B^T; lanes: a row of B).
void pack_pairs(const LaneView& v, int64_t x0, int64_t lanes, int64_t p0, int64_t kc, int ld, uint32_t* dst,
                PairScratch& s) {
  const int64_t kp = ceil_div(kc, 2);
  const auto elem = [&](int64_t x, int64_t p) { return (x0 + x) * v.xs + (p0 + p) * v.ps; };
  if (v.xs == 1 && v.ps != 1) {  // runs along the lanes, two k rows per pair row
    for (int64_t q = 0; q < kp; ++q) {
      uint32_t* d = dst + q * ld;
      const uint16_t* lo = bf16_run(v.data, v.type, elem(0, 2 * q), 1, lanes, s.run_lo);
      if (2 * q + 1 < kc) {
        const uint16_t* hi = bf16_run(v.data, v.type, elem(0, 2 * q + 1), 1, lanes, s.run_hi);
        for (int64_t x = 0; x < lanes; ++x) d[x] = uint32_t(lo[x]) | uint32_t(hi[x]) << 16;
      } else {
        for (int64_t x = 0; x < lanes; ++x) d[x] = lo[x];
      }
      std::fill(d + lanes, d + ld, 0u);
    }
    return;
  }
  for (int64_t x = 0; x < ld; ++x) {  // runs along k, one lane at a time
    if (x >= lanes) {
      for (int64_t q = 0; q < kp; ++q) dst[q * ld + x] = 0;
      continue;
    }
    const uint16_t* run = bf16_run(v.data, v.type, elem(x, 0), v.ps, kc, s.run_lo);
    for (int64_t q = 0; q < kc / 2; ++q) dst[q * ld + x] = uint32_t(run[2 * q]) | uint32_t(run[2 * q + 1]) << 16;
    if (kc % 2) dst[(kp - 1) * ld + x] = run[kc - 1];
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
  const LaneView av{a.data, a.type, a.rs, a.cs}, bv{b.data, b.type, b.cs, b.rs};
  uint32_t* bpack = static_cast<uint32_t*>(static_cast<void*>(s.b.floats(size_t(KP * NC))));
  uint32_t* apack = static_cast<uint32_t*>(static_cast<void*>(s.a.floats(size_t(KP * MC))));
  for (int64_t jc = 0; jc < n; jc += NC) {
    const int64_t nc = std::min(NC, n - jc), nbp = ceil_div(nc, NR);
    for (int64_t pc = 0; pc < k; pc += kcb) {
      const int64_t kc = std::min(kcb, k - pc), kp = ceil_div(kc, 2);
      for (int64_t jp = 0; jp < nbp; ++jp)
        pack_pairs(bv, jc + jp * NR, std::min<int64_t>(NR, nc - jp * NR), pc, kc, NR, bpack + jp * NR * kp, s);
      for (int64_t ic = r0; ic < r1; ic += MC) {
        const int64_t mc = std::min(MC, r1 - ic), nap = ceil_div(mc, MR);
        for (int64_t ip = 0; ip < nap; ++ip)
          pack_pairs(av, ic + ip * MR, std::min<int64_t>(MR, mc - ip * MR), pc, kc, MR, apack + ip * MR * kp, s);
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
  if (gemm_threads_on_pool()) {  // claimed slabs, as sgemm (common/worker_pool.h)
    run_chunks(nt, nt, slab);
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
