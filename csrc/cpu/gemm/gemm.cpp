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
// "auto" takes the first entry of the active ISA, so the newest variant comes first.
const KernelConfig kKernels[] = {
    {"generic_4x8", int(Isa::generic), 4, 8, 256, 128, 1024, generic::sgemm_generic_4x8,
     generic::sgemm_generic_4x8_rowa, nullptr, nullptr, nullptr},
    {"avx2_6x16", int(Isa::avx2), 6, 16, 256, 144, 2048, avx2::sgemm_avx2_6x16,
     avx2::sgemm_avx2_6x16_rowa, nullptr, nullptr, nullptr},
    {"avx512_14x32t", int(Isa::avx512), 14, 32, 256, 168, 2048, avx512::sgemm_avx512_14x32e,
     avx512::sgemm_avx512_14x32e_rowa, avx512::sgemm_avx512_14x32e_edge,
     avx512::transpose_pack_avx512_14, avx512::transpose_pack_avx512_32},
    {"avx512_14x32e", int(Isa::avx512), 14, 32, 256, 168, 2048, avx512::sgemm_avx512_14x32e,
     avx512::sgemm_avx512_14x32e_rowa, avx512::sgemm_avx512_14x32e_edge, nullptr, nullptr},
    {"avx512_14x32", int(Isa::avx512), 14, 32, 256, 168, 2048, avx512::sgemm_avx512_14x32,
     avx512::sgemm_avx512_14x32_rowa, nullptr, nullptr, nullptr},
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

// One C tile at (i0, j0) of extent rows x cols (<= MR x NR), A addressed in place
// (rowa: a[i*lda + p]) or packed/column-major (a[p*lda + i]). Remainder tiles run the
// variant's exact-size edge kernel when it has one (it computes rows x ecols, ecols the
// next multiple of 16), else the full kernel on zero-padded panels. Tiles whose computed
// extent matches C and has unit column stride go straight to C; others through `tmp`
// (row stride NR) so nothing outside C is touched.
inline void run_tile(const KernelConfig& cfg, bool rowa, int64_t kc, const float* ap, int64_t lda,
                     const float* bp, int64_t ldb, MutMatRef c, int64_t i0, int64_t j0,
                     int64_t rows, int64_t cols, const TileEpilogue& te, float* tmp) {
  gemm::MicroKernel ukr = rowa ? cfg.ukr_rowa : cfg.ukr;
  int64_t krows = cfg.mr, kcols = cfg.nr;
  if (cfg.edge && (rows < cfg.mr || cols < cfg.nr)) {
    const gemm::EdgeKernel e = cfg.edge(int(rows), int(cols), rowa);
    ukr = e.ukr;
    krows = rows;
    kcols = e.cols;
  }
  float* cij = c.data + i0 * c.rs + j0 * c.cs;
  if (rows == krows && cols == kcols && c.cs == 1) {
    ukr(kc, ap, lda, bp, ldb, cij, c.rs, te);
    return;
  }
  const int nr = cfg.nr;
  if (te.beta != 0.0f) {
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) tmp[i * nr + j] = cij[i * c.rs + j * c.cs];
  }
  ukr(kc, ap, lda, bp, ldb, tmp, nr, te);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) cij[i * c.rs + j * c.cs] = tmp[i * nr + j];
}

// Contiguous share [lo, hi) of `count` items for thread `tid` of `team`.
inline void share(int64_t count, int tid, int team, int64_t& lo, int64_t& hi) {
  lo = count * tid / team;
  hi = count * (tid + 1) / team;
}

// direct: read full A micro-panels and full B micro-panels in place where the strides
// allow (A row- or column-major, B row-major) instead of packing them; edge panels are
// still packed (zero-padded). Worth it for small problems, where packing is a large
// share of the time and everything sits in L1/L2 anyway.
void gemm_blocked(const KernelConfig& cfg, int64_t m, int64_t n, int64_t k, float alpha, MatRef a,
                  MatRef b, float beta, MutMatRef c, const GemmEpilogue& ep, int nt, bool direct) {
  const bool a_rowmajor = a.cs == 1, a_direct = direct && (a.cs == 1 || a.rs == 1);
  const bool b_direct = direct && b.cs == 1;
  const int MR = cfg.mr, NR = cfg.nr;
  // Which panels are read in place: full ones, and with exact-size edge kernels also A
  // edge panels (only `rows` rows are read) and B edge panels of a whole kernel width.
  auto a_in_place = [&](int64_t rows) { return a_direct && (rows == MR || cfg.edge); };
  auto b_in_place = [&](int64_t cols) {
    return b_direct && (cols == NR || (cfg.edge && cfg.edge(MR, int(cols), false).cols == cols));
  };
  // Whether a block needs packing at all (else its barrier is skipped): depends on the
  // shape only, so every thread takes the same barriers.
  // (a block of mc rows / nc columns: full panels plus a remainder)
  auto a_packs = [&](int64_t mc) { return !a_in_place(MR) || (mc % MR && !a_in_place(mc % MR)); };
  auto b_packs = [&](int64_t nc) { return !b_in_place(NR) || (nc % NR && !b_in_place(nc % NR)); };
  // A read wholly in place needs no L2-sized block: one ic block, fewer barriers and
  // a better split of the tile grid (256 rows: 1 x 19 panels, not 12 + 7).
  const int64_t MC = a_packs(m) ? std::min<int64_t>(cfg.mc, round_up(m, MR)) : round_up(m, MR);
  // Equal k-blocks (784 -> 4 x 196, not 3 x 256 + 16): a thin last block would reload and
  // store every C tile for little work. Depends on k only, so thread-count invariant.
  const int64_t KC = ceil_div(k, ceil_div(k, cfg.kc));
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
        const bool bpacked = b_packs(nc);
        int64_t lo, hi;
        share(nbp, tid, team, lo, hi);
        for (int64_t jp = lo; jp < hi; ++jp) {
          const int64_t j0 = jp * NR, cols = std::min<int64_t>(NR, nc - j0);
          if (b_in_place(cols)) continue;
          gemm::pack_b_panel(NR, kc, cols, b.data + pc * b.rs + (jc + j0) * b.cs, b.rs, b.cs,
                             bpack + jp * NR * kc, cfg.tpack_b);
        }
        if (team > 1 && bpacked) {
#pragma omp barrier
        }
        bool any_packed = bpacked;
        TileEpilogue te;
        te.alpha = alpha;
        te.beta = first ? beta : 1.0f;
        te.activation = last ? act : 0;
        for (int64_t ic = 0; ic < m; ic += MC) {
          const int64_t mc = std::min(MC, m - ic), nap = ceil_div(mc, MR);
          const bool apacked = a_packs(mc);
          any_packed |= apacked;
          float* ablk = apack[buf];
          buf ^= 1;
          share(nap, tid, team, lo, hi);
          for (int64_t ip = lo; ip < hi; ++ip) {
            const int64_t i0 = ip * MR, rows = std::min<int64_t>(MR, mc - i0);
            if (a_in_place(rows)) continue;
            gemm::pack_a_panel(MR, kc, rows, a.data + (ic + i0) * a.rs + pc * a.cs, a.rs, a.cs,
                               ablk + ip * MR * kc, cfg.tpack_a);
          }
          if (team > 1 && apacked) {
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
            const bool bd = b_in_place(cols);
            const float* bp = bd ? b.data + pc * b.rs + jc + j0 : bpack + jp * NR * kc;
            const int64_t ldb = bd ? b.rs : NR;
            for (int64_t ip = ilo; ip < ihi; ++ip) {
              const int64_t i0 = ip * MR, rows = std::min<int64_t>(MR, mc - i0);
              te.bias_row = (last && bias_row) ? bias_row + ic + i0 : nullptr;
              if (a_in_place(rows)) {
                const float* ap = a.data + (ic + i0) * a.rs + pc * a.cs;
                run_tile(cfg, a_rowmajor, kc, ap, a_rowmajor ? a.rs : a.cs, bp, ldb, c, ic + i0,
                         jc + j0, rows, cols, te, tmp);
              } else {
                run_tile(cfg, false, kc, ablk + ip * MR * kc, MR, bp, ldb, c, ic + i0, jc + j0,
                         rows, cols, te, tmp);
              }
            }
          }
        }
        // Before the next k-block repacks the buffers. C tiles need no barrier: a
        // tile's owner depends on the shape only, so it is the same in every k-block.
        if (team > 1 && any_packed) {
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
  const KernelConfig& cfg = pick_kernel();
  // Orientation: C^T = B^T A^T is the same arithmetic, element by element. Take it when
  // C is column-major (e.g. out.T) so tiles store contiguous rows, or when it pads far
  // less (n = 10 wastes 22 of 32 tile columns; as rows it wastes 4 of 14).
  auto padded = [&](int64_t rows, int64_t cols) {
    return double(round_up(rows, cfg.mr)) * double(round_up(cols, cfg.nr));
  };
  const bool col_major_c = c.cs != 1 && c.rs == 1;
  const bool row_major_c = c.cs == 1;
  const bool swap = col_major_c ? padded(n, m) <= 1.5 * padded(m, n)
                                : (row_major_c && padded(n, m) < 0.6 * padded(m, n));
  GemmEpilogue e = ep;
  if (swap) {
    std::swap(m, n);
    MatRef at{b.data, b.cs, b.rs}, bt{a.data, a.cs, a.rs};
    a = at;
    b = bt;
    std::swap(c.rs, c.cs);
    if (e.bias_mode == BiasMode::per_row) e.bias_mode = BiasMode::per_column;
    else if (e.bias_mode == BiasMode::per_column) e.bias_mode = BiasMode::per_row;
  }
  // Below ~1 MFLOP per thread (64^3 is 0.5) a second thread saves less than the fork-join
  // costs, and loses badly when a peer library's spinning threads hold the other core.
  int nt = nthreads > 0 ? nthreads : threads_for(2.0 * double(m) * double(n) * double(k), 1.0e6);
  // In place when A + B <= 1.25 MiB (measured: MLP shapes such as 128x784x256 gain
  // ~40% over packing; 512^3 and up still pack).
  const bool direct = double(m) * double(k) + double(k) * double(n) <= 320.0 * 1024;
  gemm_blocked(cfg, m, n, k, alpha, a, b, beta, c, e, std::max(1, nt), direct);
}

}  // namespace nnf
