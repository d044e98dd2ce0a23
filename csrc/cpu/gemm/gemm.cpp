// Portable GEMM frame (GotoBLAS / BLIS scheme) around per-ISA micro-kernels.
//
//   for jc in N step NC:                 B block  kc x nc, packed once, shared (L2/L3)
//     for pc in K step KC:
//       for ic in M step MC:             A block  mc x kc, packed, shared (L2)
//         for jr in nc step NR:          B micro-panel kc x NR (L1)
//           for ir in mc step MR:        A micro-panel kc x MR
//             micro-kernel -> C tile MR x NR
//
// Threads split the tiles of each (ic) macro block, along whichever of the jr / ir
// dimensions balances better; packing is shared the same way. K is never split,
// and a tile's arithmetic does not depend on which thread runs it, so results are
// bitwise identical for any thread count.
#include "cpu/gemm/gemm.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "common/aligned_buffer.h"
#include "common/cpu_features.h"
#include "common/threads.h"
#include "cpu/gemm/activation_scalar.h"
#include "cpu/gemm/gemm_kernel.h"
#include "cpu/gemm/gemm_pack.h"
#include "cpu/gemm/gemm_variants.h"

namespace nnf {
namespace {

using gemm::KernelConfig;
using gemm::TileEpilogue;

constexpr int kMaxTile = 16 * 64;  // largest mr * nr of any kernel

// Block sizes: kc*nr*4 B micro-panel ~ L1 (32 KiB); mc*kc*4 A block well inside the
// 1 MiB L2; kc*nc*4 B block in L2/L3.
const KernelConfig kKernels[] = {
    {"generic_4x8", int(Isa::generic), 4, 8, 256, 128, 1024, generic::sgemm_generic_4x8},
    {"avx2_6x16", int(Isa::avx2), 6, 16, 256, 144, 2048, avx2::sgemm_avx2_6x16},
    {"avx512_14x32", int(Isa::avx512), 14, 32, 256, 168, 2048, avx512::sgemm_avx512_14x32},
};
constexpr int kNumKernels = sizeof(kKernels) / sizeof(kKernels[0]);

// -2: not yet read from the environment; -1: auto; else index into kKernels.
std::atomic<int> g_variant{-2};

int find_variant(const std::string& name) {
  if (name == "auto") return -1;
  for (int i = 0; i < kNumKernels; ++i)
    if (name == kKernels[i].name) return i;
  std::string known = "auto";
  for (const auto& k : kKernels) known += std::string(", ") + k.name;
  throw std::invalid_argument("unknown GEMM variant '" + name + "' (known: " + known + ")");
}

int current_variant() {
  int v = g_variant.load(std::memory_order_relaxed);
  if (v == -2) {
    const char* env = std::getenv("NNFORGE_GEMM_VARIANT");
    v = (env && *env) ? find_variant(env) : -1;
    g_variant.store(v, std::memory_order_relaxed);
  }
  return v;
}

const KernelConfig& pick_kernel() {
  const int isa = int(active_isa());
  const int v = current_variant();
  if (v >= 0 && kKernels[v].isa == isa) return kKernels[v];
  for (const auto& k : kKernels)
    if (k.isa == isa) return k;
  return kKernels[0];
}

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
inline int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

// Scratch owned by the calling thread and shared with its OpenMP team for one call.
// Private to GEMM (not nnf::thread_scratch) so callers such as conv can hold their
// own scratch across a GEMM call.
struct Scratch {
  AlignedBuffer a[2];  // A blocks, double-buffered so one barrier per block suffices
  AlignedBuffer b;     // B block
  AlignedBuffer bias;  // bias copied contiguous and zero-padded to whole tiles
};
Scratch& caller_scratch() {
  static thread_local Scratch s;
  return s;
}

// C = beta*C (+ bias, activation): k == 0 or alpha == 0, where A and B are not read.
void scale_only(int64_t m, int64_t n, float beta, MutMatRef c, const GemmEpilogue& ep) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float* x = c.data + i * c.rs + j * c.cs;
      float v = beta == 0.0f ? 0.0f : beta * *x;
      if (ep.bias_mode == BiasMode::per_row) v += ep.bias[i * ep.bias_stride];
      if (ep.bias_mode == BiasMode::per_column) v += ep.bias[j * ep.bias_stride];
      *x = gemm::activate_scalar(v, int(ep.activation));
    }
}

// One C tile at (i0, j0) of extent rows x cols (<= MR x NR). Full tiles with unit
// column stride go straight to C; others through `tmp` so nothing outside C is touched.
inline void run_tile(const KernelConfig& cfg, int64_t kc, const float* ap, const float* bp,
                     int64_t ldb, MutMatRef c, int64_t i0, int64_t j0, int64_t rows, int64_t cols,
                     const TileEpilogue& te, float* tmp) {
  float* cij = c.data + i0 * c.rs + j0 * c.cs;
  if (rows == cfg.mr && cols == cfg.nr && c.cs == 1) {
    cfg.ukr(kc, ap, bp, ldb, cij, c.rs, te);
    return;
  }
  const int nr = cfg.nr;
  if (te.beta != 0.0f) {
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) tmp[i * nr + j] = cij[i * c.rs + j * c.cs];
  }
  cfg.ukr(kc, ap, bp, ldb, tmp, nr, te);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) cij[i * c.rs + j * c.cs] = tmp[i * nr + j];
}

// Contiguous share [lo, hi) of `count` items for thread `tid` of `team`.
inline void share(int64_t count, int tid, int team, int64_t& lo, int64_t& hi) {
  lo = count * tid / team;
  hi = count * (tid + 1) / team;
}

void gemm_blocked(const KernelConfig& cfg, int64_t m, int64_t n, int64_t k, float alpha, MatRef a,
                  MatRef b, float beta, MutMatRef c, const GemmEpilogue& ep, int nt) {
  const int MR = cfg.mr, NR = cfg.nr;
  const int64_t KC = std::min<int64_t>(cfg.kc, k);
  const int64_t MC = std::min<int64_t>(cfg.mc, round_up(m, MR));
  const int64_t NC = std::min<int64_t>(cfg.nc, round_up(n, NR));

  Scratch& s = caller_scratch();
  float* bpack = s.b.floats(size_t(KC * NC));
  float* apack[2] = {s.a[0].floats(size_t(KC * MC)), s.a[1].floats(size_t(KC * MC))};
  const float* bias_row = nullptr;
  const float* bias_col = nullptr;
  if (ep.bias_mode != BiasMode::none && ep.bias) {
    const bool rows = ep.bias_mode == BiasMode::per_row;
    const int64_t len = rows ? m : n, padded = round_up(len, rows ? MR : NR);
    float* p = s.bias.floats(size_t(padded));
    for (int64_t i = 0; i < len; ++i) p[i] = ep.bias[i * ep.bias_stride];
    std::fill(p + len, p + padded, 0.0f);
    (rows ? bias_row : bias_col) = p;
  }
  const int act = int(ep.activation);

  auto body = [&](int tid, int team) {
    alignas(64) float tmp[kMaxTile];
    int buf = 0;
    for (int64_t jc = 0; jc < n; jc += NC) {
      const int64_t nc = std::min(NC, n - jc), nbp = ceil_div(nc, NR);
      for (int64_t pc = 0; pc < k; pc += KC) {
        const int64_t kc = std::min(KC, k - pc);
        const bool first = pc == 0, last = pc + kc == k;
        int64_t lo, hi;
        share(nbp, tid, team, lo, hi);
        for (int64_t jp = lo; jp < hi; ++jp) {
          const int64_t j0 = jp * NR;
          gemm::pack_b_panel(NR, kc, std::min<int64_t>(NR, nc - j0),
                             b.data + pc * b.rs + (jc + j0) * b.cs, b.rs, b.cs, bpack + jp * NR * kc);
        }
        if (team > 1) {
#pragma omp barrier
        }
        TileEpilogue te;
        te.alpha = alpha;
        te.beta = first ? beta : 1.0f;
        te.activation = last ? act : 0;
        for (int64_t ic = 0; ic < m; ic += MC) {
          const int64_t mc = std::min(MC, m - ic), nap = ceil_div(mc, MR);
          float* ablk = apack[buf];
          buf ^= 1;
          share(nap, tid, team, lo, hi);
          for (int64_t ip = lo; ip < hi; ++ip) {
            const int64_t i0 = ip * MR;
            gemm::pack_a_panel(MR, kc, std::min<int64_t>(MR, mc - i0),
                               a.data + (ic + i0) * a.rs + pc * a.cs, a.rs, a.cs, ablk + ip * MR * kc);
          }
          if (team > 1) {
#pragma omp barrier
          }
          // Split the nap x nbp tile grid along the dimension that balances better.
          const bool split_n = ceil_div(nbp, team) * nap <= ceil_div(nap, team) * nbp;
          int64_t jlo = 0, jhi = nbp, ilo = 0, ihi = nap;
          if (split_n) share(nbp, tid, team, jlo, jhi);
          else share(nap, tid, team, ilo, ihi);
          for (int64_t jp = jlo; jp < jhi; ++jp) {
            const int64_t j0 = jp * NR, cols = std::min<int64_t>(NR, nc - j0);
            te.bias_col = (last && bias_col) ? bias_col + jc + j0 : nullptr;
            for (int64_t ip = ilo; ip < ihi; ++ip) {
              const int64_t i0 = ip * MR, rows = std::min<int64_t>(MR, mc - i0);
              te.bias_row = (last && bias_row) ? bias_row + ic + i0 : nullptr;
              run_tile(cfg, kc, ablk + ip * MR * kc, bpack + jp * NR * kc, NR, c, ic + i0, jc + j0,
                       rows, cols, te, tmp);
            }
          }
        }
        if (team > 1) {
#pragma omp barrier
        }
      }
    }
  };
  // A one-thread call skips the OpenMP runtime entirely (~1 us per call otherwise).
  if (nt <= 1) {
    body(0, 1);
  } else {
#pragma omp parallel num_threads(nt)
    body(omp_get_thread_num(), omp_get_num_threads());
  }
}

}  // namespace

std::vector<std::string> gemm_variants() {
  std::vector<std::string> out{"auto"};
  for (const auto& k : kKernels)
    if (cpu_supports(Isa(k.isa))) out.emplace_back(k.name);
  return out;
}

std::string get_gemm_variant() {
  const int v = current_variant();
  return v < 0 ? "auto" : kKernels[v].name;
}

void set_gemm_variant(const std::string& name) {
  const int v = find_variant(name);
  if (v >= 0 && !cpu_supports(Isa(kKernels[v].isa)))
    throw std::invalid_argument("GEMM variant '" + name + "' needs ISA " +
                                isa_name(Isa(kKernels[v].isa)) + ", which this CPU lacks");
  g_variant.store(v, std::memory_order_relaxed);
}

void sgemm(int64_t m, int64_t n, int64_t k, float alpha, MatRef a, MatRef b, float beta,
           MutMatRef c, const GemmEpilogue& ep, int nthreads) {
  if (m < 0 || n < 0 || k < 0)
    throw std::invalid_argument("sgemm: negative size m=" + std::to_string(m) +
                                " n=" + std::to_string(n) + " k=" + std::to_string(k));
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == 0.0f) {
    scale_only(m, n, beta, c, ep);
    return;
  }
  // A single row / column has no meaningful stride in that direction.
  if (n == 1) c.cs = 1;
  if (m == 1) c.rs = 1;
  // Column-major C (e.g. out.T): compute C^T = B^T A^T so tiles store contiguous rows.
  GemmEpilogue e = ep;
  if (c.cs != 1 && c.rs == 1) {
    std::swap(m, n);
    MatRef at{b.data, b.cs, b.rs}, bt{a.data, a.cs, a.rs};
    a = at;
    b = bt;
    std::swap(c.rs, c.cs);
    if (e.bias_mode == BiasMode::per_row) e.bias_mode = BiasMode::per_column;
    else if (e.bias_mode == BiasMode::per_column) e.bias_mode = BiasMode::per_row;
  }
  const KernelConfig& cfg = pick_kernel();
  int nt = nthreads > 0 ? nthreads : threads_for(2.0 * double(m) * double(n) * double(k));
  gemm_blocked(cfg, m, n, k, alpha, a, b, beta, c, e, std::max(1, nt));
}

}  // namespace nnf
