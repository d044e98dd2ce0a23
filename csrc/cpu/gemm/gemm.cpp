// Portable GEMM frame (GotoBLAS / BLIS scheme) around per-ISA micro-kernels.
//
//   for jc in N step NC:                 B block  kc x nc, packed (L2/L3)
//     for pc in K step KC:
//       for ic in M step MC:             A block  mc x kc, packed (L2)
//         for jr in nc step NR:          B micro-panel kc x NR (L1)
//           for ir in mc step MR:        A micro-panel kc x MR
//             micro-kernel -> C tile MR x NR
//
// Threads split C into disjoint slabs of whole MR-row (or NR-column) panels and run
// this loop nest on their slab with their own packing buffers, with no barrier (see
// gemm_threads). K is never split and KC depends on k only, so every element of C is
// computed by the same FMA chain whatever the thread count: results are bitwise
// identical for any number of threads.
#include "cpu/gemm/gemm.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "common/aligned_buffer.h"
#include "common/parallel_errors.h"
#include "common/threads.h"
#include "common/variant_table.h"
#include "common/worker_pool.h"
#include "cpu/gemm/activation_scalar.h"
#include "cpu/gemm/gemm_kernel.h"
#include "cpu/gemm/gemm_pack.h"
#include "cpu/gemm/gemm_variants.h"

namespace nnf {
namespace {

using gemm::KernelConfig;
using gemm::TileEpilogue;

constexpr int kMaxTile = 16 * 64;  // largest mr * nr of any kernel

// The variant table: every sgemm_*.cpp registers its KernelConfig(s) with a slot and
// a preference; block sizes and the reason for them are written beside each one.
VariantTable<KernelConfig>& table() {
  static VariantTable<KernelConfig> t("gemm", "sgemm", "GEMM", "NNFORGE_GEMM_VARIANT");
  return t;
}

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
inline int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

// Per-thread packing scratch (each thread of a call packs into its own).
// Private to GEMM (not nnf::thread_scratch) so callers such as conv can hold their
// own scratch across a GEMM call.
struct Scratch {
  AlignedBuffer a;     // A block
  AlignedBuffer b;     // B block
  AlignedBuffer bias;  // bias copied contiguous and zero-padded to whole tiles (caller's)
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
// kernel's width: 8, 16 or 32), else the full kernel on zero-padded panels. Tiles whose
// computed extent matches C and has unit column stride go straight to C; others through
// `tmp` (row stride NR) so nothing outside C is touched.
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

// How gemm_threads runs its nt slabs (gemm_variants.h).
enum class Threading { pool, omp };
Threading threading_from_env() {
  const char* env = std::getenv("NNFORGE_GEMM_THREADING");
  return env && std::strcmp(env, "omp") == 0 ? Threading::omp : Threading::pool;
}
std::atomic<Threading> g_threading{threading_from_env()};

// Block sizes of one call; KC depends on k only (never on the thread split), so every
// element of C sees the same k-blocks and FMA order whatever the thread count.
struct Blocking {
  int64_t kc, mc, nc;
};

// Serial blocked GEMM on one slab of C (rows x cols), the whole k range:
//   for jc in N step NC: for pc in K step KC: pack B block; for ic in M step MC: pack A
//   block; for jr: for ir: micro-kernel.
// bias_row / bias_col: contiguous, zero-padded to whole tiles, already offset to the slab.
// direct: read full A micro-panels and full B micro-panels in place where the strides
// allow (A row- or column-major, B row-major) instead of packing them; edge panels are
// still packed (zero-padded). Worth it for small problems, where packing is a large
// share of the time and everything sits in L1/L2 anyway.
void gemm_slab(const KernelConfig& cfg, const Blocking& blk, int64_t m, int64_t n, int64_t k,
               float alpha, MatRef a, MatRef b, float beta, MutMatRef c, const float* bias_row,
               const float* bias_col, int act, bool direct) {
  const bool a_rowmajor = a.cs == 1, a_direct = direct && (a.cs == 1 || a.rs == 1);
  const bool b_direct = direct && b.cs == 1;
  const int MR = cfg.mr, NR = cfg.nr;
  // Which panels are read in place: full ones, and with exact-size edge kernels also A
  // edge panels (only `rows` rows are read) and B edge panels of a whole kernel width.
  auto a_in_place = [&](int64_t rows) { return a_direct && (rows == MR || cfg.edge); };
  auto b_in_place = [&](int64_t cols) {
    return b_direct && (cols == NR || (cfg.edge && cfg.edge(MR, int(cols), false).cols == cols));
  };
  // MC-row blocks even when A is read in place: the rows of one block are swept once per
  // B micro-panel, and a whole large A (fc1 dW: 784 x 128, 400 KiB) would fall out of L2
  // between sweeps (784x128x256 ~79 -> ~84 GF/s on one thread).
  const int64_t MC = std::min<int64_t>(blk.mc, round_up(m, MR));
  const int64_t KC = blk.kc;
  const int64_t NC = std::min<int64_t>(blk.nc, round_up(n, NR));

  // This thread's own scratch: slabs share nothing but the (read-only) operands.
  Scratch& s = caller_scratch();
  float* bpack = s.b.floats(size_t(KC * NC));
  float* apack = s.a.floats(size_t(KC * MC));
  alignas(64) float tmp[kMaxTile];

  for (int64_t jc = 0; jc < n; jc += NC) {
    const int64_t nc = std::min(NC, n - jc), nbp = ceil_div(nc, NR);
    for (int64_t pc = 0; pc < k; pc += KC) {
      const int64_t kc = std::min(KC, k - pc);
      const bool last = pc + kc == k;
      int64_t jp0 = 0;
      if (b.cs == 1 && !b_in_place(NR)) {  // row-major B: full panels row by row
        jp0 = nc / NR;
        gemm::pack_b_rows(NR, kc, jp0, b.data + pc * b.rs + jc, b.rs, bpack);
      }
      for (int64_t jp = jp0; jp < nbp; ++jp) {
        const int64_t j0 = jp * NR, cols = std::min<int64_t>(NR, nc - j0);
        if (b_in_place(cols)) continue;
        gemm::pack_b_panel(NR, kc, cols, b.data + pc * b.rs + (jc + j0) * b.cs, b.rs, b.cs,
                           bpack + jp * NR * kc, cfg.tpack_b);
      }
      TileEpilogue te;
      te.alpha = alpha;
      te.beta = pc == 0 ? beta : 1.0f;
      te.activation = last ? act : 0;
      for (int64_t ic = 0; ic < m; ic += MC) {
        const int64_t mc = std::min(MC, m - ic), nap = ceil_div(mc, MR);
        for (int64_t ip = 0; ip < nap; ++ip) {
          const int64_t i0 = ip * MR, rows = std::min<int64_t>(MR, mc - i0);
          if (a_in_place(rows)) continue;
          gemm::pack_a_panel(MR, kc, rows, a.data + (ic + i0) * a.rs + pc * a.cs, a.rs, a.cs,
                             apack + ip * MR * kc, cfg.tpack_a);
        }
        for (int64_t jp = 0; jp < nbp; ++jp) {
          const int64_t j0 = jp * NR, cols = std::min<int64_t>(NR, nc - j0);
          te.bias_col = (last && bias_col) ? bias_col + jc + j0 : nullptr;
          const bool bd = b_in_place(cols);
          const float* bp = bd ? b.data + pc * b.rs + jc + j0 : bpack + jp * NR * kc;
          const int64_t ldb = bd ? b.rs : NR;
          for (int64_t ip = 0; ip < nap; ++ip) {
            const int64_t i0 = ip * MR, rows = std::min<int64_t>(MR, mc - i0);
            te.bias_row = (last && bias_row) ? bias_row + ic + i0 : nullptr;
            if (a_in_place(rows)) {
              const float* ap = a.data + (ic + i0) * a.rs + pc * a.cs;
              run_tile(cfg, a_rowmajor, kc, ap, a_rowmajor ? a.rs : a.cs, bp, ldb, c, ic + i0,
                       jc + j0, rows, cols, te, tmp);
            } else {
              run_tile(cfg, false, kc, apack + ip * MR * kc, MR, bp, ldb, c, ic + i0, jc + j0,
                       rows, cols, te, tmp);
            }
          }
        }
      }
    }
  }
}

// Threads own disjoint slabs of C -- whole MR-row panels (split_m) or NR-column panels --
// and run the serial algorithm on them with their own packing buffers: no barrier at all
// (the previous scheme shared packed blocks and synchronised twice per MC x KC block,
// stalling whenever the other core was busy). The price is packing the shared operand
// once per thread (B for a row split, A for a column split), k*n or k*m floats against
// m*n*k/team FMAs each, which the choice of split weighs against the tile balance.
// Per element the arithmetic is that of the serial call.
void gemm_threads(const KernelConfig& cfg, int64_t m, int64_t n, int64_t k, float alpha,
                  MatRef a, MatRef b, float beta, MutMatRef c, const GemmEpilogue& ep, int nt,
                  bool direct) {
  const int MR = cfg.mr, NR = cfg.nr;
  // Equal k-blocks (784 -> 4 x 196, not 3 x 256 + 16): a thin last block would reload and
  // store every C tile for little work.
  const Blocking blk{ceil_div(k, ceil_div(k, cfg.kc)), cfg.mc, cfg.nc};

  const float* bias_row = nullptr;
  const float* bias_col = nullptr;
  if (ep.bias_mode != BiasMode::none && ep.bias) {
    const bool rows = ep.bias_mode == BiasMode::per_row;
    const int64_t len = rows ? m : n, padded = round_up(len, rows ? MR : NR);
    float* p = caller_scratch().bias.floats(size_t(padded));
    for (int64_t i = 0; i < len; ++i) p[i] = ep.bias[i * ep.bias_stride];
    std::fill(p + len, p + padded, 0.0f);
    (rows ? bias_row : bias_col) = p;
  }
  const int act = int(ep.activation);
  const int64_t nap = ceil_div(m, MR), nbp = ceil_div(n, NR);
  // Per-thread cost of each split in FMA lanes: its tiles (k lanes per tile element) plus
  // the packing it does, ~8 lanes per packed float (a transposing or strided pack runs at
  // ~1 float per cycle against 16 lanes per cycle of FMAs). The row split packs all of B
  // and its share of A, the column split the reverse: fc1 dX 128x256x784 with B = W.T
  // splits columns (each thread packs half of W.T) although rows balance slightly better.
  const bool a_packs = !(direct && (a.cs == 1 || a.rs == 1)), b_packs = !(direct && b.cs == 1);
  const double pa = a_packs ? 8.0 * double(m) * double(k) : 0.0;
  const double pb = b_packs ? 8.0 * double(k) * double(n) : 0.0;
  const double kk = double(k);
  const double cost_m = double(ceil_div(nap, nt) * MR) * double(nbp * NR) * kk + pb + pa / nt;
  const double cost_n = double(ceil_div(nbp, nt) * NR) * double(nap * MR) * kk + pa + pb / nt;
  const bool split_m = cost_m < cost_n || (cost_m == cost_n && n <= m);

  // With the pool, slabs are claimed: when the operand every slab reads is not packed
  // (direct mode), four slabs per thread cost nothing extra, and a thread that starts
  // late (its core held by another library's spinning pool) still takes its share of the
  // rest instead of leaving the caller to run a whole half alone.
  const bool pool = gemm_threads_on_pool();
  const bool shared_packs = split_m ? b_packs : a_packs;
  const int64_t panels = split_m ? nap : nbp, width = split_m ? MR : NR;
  const int slabs = nt <= 1 ? 1 : int(std::min<int64_t>(panels, pool && !shared_packs ? 4 * nt : nt));
  auto slab = [&](int tid) {
    const int64_t lo = panels * tid / slabs * width, hi = panels * (tid + 1) / slabs * width;
    if (split_m) {
      const int64_t r1 = std::min(hi, m);
      if (r1 <= lo) return;
      gemm_slab(cfg, blk, r1 - lo, n, k, alpha, MatRef{a.data + lo * a.rs, a.rs, a.cs}, b, beta,
                MutMatRef{c.data + lo * c.rs, c.rs, c.cs}, bias_row ? bias_row + lo : nullptr,
                bias_col, act, direct);
    } else {
      const int64_t c1 = std::min(hi, n);
      if (c1 <= lo) return;
      gemm_slab(cfg, blk, m, c1 - lo, k, alpha, a, MatRef{b.data + lo * b.cs, b.rs, b.cs}, beta,
                MutMatRef{c.data + lo * c.cs, c.rs, c.cs}, bias_row,
                bias_col ? bias_col + lo : nullptr, act, direct);
    }
  };
  // A one-thread call skips the thread runtime entirely (~1 us per call otherwise).
  if (nt <= 1) {
    slab(0);
  } else if (pool) {
    run_chunks(slabs, nt, slab);
  } else {
    // Each thread grows its own packing buffers here, so std::bad_alloc can be thrown
    // inside the region; it must not escape it (std::terminate), so it is carried out.
    ParallelErrors errors;
    // A nested region may get fewer threads than slabs: each runs every team-th slab.
#pragma omp parallel num_threads(nt)
    for (int t = omp_get_thread_num(); t < slabs; t += omp_get_num_threads()) errors.run([&] { slab(t); });
    errors.rethrow();
  }
}

}  // namespace

namespace gemm {
bool register_sgemm_variant(const KernelConfig& cfg) {
  table().add(cfg);
  return true;
}
}  // namespace gemm

std::vector<std::string> gemm_variants() { return table().runnable_names(); }

std::string get_gemm_variant() { return table().forced_name(); }

void set_gemm_variant(const std::string& name) { table().force(name); }

std::vector<int64_t> gemm_variant_blocking(const std::string& name) {
  const KernelConfig& c = table().named(name);
  return {c.mr, c.nr, c.kc, c.mc, c.nc};
}

bool gemm_threads_on_pool() { return g_threading.load(std::memory_order_relaxed) == Threading::pool; }

std::string get_gemm_threading() { return gemm_threads_on_pool() ? "pool" : "omp"; }

void set_gemm_threading(const std::string& name) {
  if (name != "pool" && name != "omp")
    throw std::invalid_argument("gemm threading must be 'pool' or 'omp', got '" + name + "'");
  g_threading.store(name == "pool" ? Threading::pool : Threading::omp, std::memory_order_relaxed);
}

int sgemm_threads_for(double flops) {
  // Below ~1 MFLOP per thread (64^3 is 0.5) a second thread saves less than it costs: with
  // OpenMP the fork-join, and it loses badly when a peer library's spinning threads hold
  // the other core; on the pool (spinning worker, slabs handed over in well under a
  // microsecond) 64^3 still goes 6.3 -> 7.1-8.9 us and 96^3 gains only 8% on two threads.
  return threads_for(flops, 1.0e6);
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
  const KernelConfig& cfg = table().pick();
  // Orientation: C^T = B^T A^T is the same arithmetic, element by element. Take it when
  // C is column-major (e.g. out.T) so tiles store contiguous rows, or when it pads far
  // less (n = 10 wastes 22 of 32 tile columns; as rows it wastes 4 of 14).
  auto padded = [&](int64_t rows, int64_t cols) {
    return double(round_up(rows, cfg.mr)) * double(round_up(cols, cfg.nr));
  };
  const bool col_major_c = c.cs != 1 && c.rs == 1;
  const bool row_major_c = c.cs == 1;
  const bool swap = col_major_c ? padded(n, m) <= 1.5 * padded(m, n)
                                : (row_major_c && padded(n, m) < cfg.swap_below * padded(m, n));
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
  int nt = nthreads > 0 ? nthreads : sgemm_threads_for(2.0 * double(m) * double(n) * double(k));
  // In place when A + B <= 1.25 MiB (measured: MLP shapes such as 128x784x256 gain
  // ~40% over packing; 512^3 and up still pack).
  const bool direct = double(m) * double(k) + double(k) * double(n) <= 320.0 * 1024;
  gemm_threads(cfg, m, n, k, alpha, a, b, beta, c, e, std::max(1, nt), direct);
}

}  // namespace nnf
