// Register-blocked tile GEMM for the attention kernels, one source for every ISA.
//
// Included only by *.per_isa.cpp files: GCC vector extensions of the ISA's width
// (16 floats with the avx512 flags, 8 with avx2, 4 = SSE2 in generic) hold an
// MR x (NV * W) block of C in registers, so each level gets an explicit micro-kernel
// (BLIS-style: broadcast one A element, FMA against NV vectors of a B row) without
// three hand-written copies. -std=gnu++17 contracts a*b+c into FMA where the flags
// allow it. Register budget: avx512 6 x 4 zmm = 24 accumulators + 4 B + 1 broadcast
// of 32 (narrower tiles take more rows, see mr_for); avx2 and SSE 6 x 2 = 12 + 2 + 1 of 16.
//
//   C (M x N) (+)= A (M x K) B (K x N)
//   A element (i, p) at a[i*sar + p*sap]  (row-major: sar = lda, sap = 1; a transposed
//                                           tile read in place: sar = 1, sap = lda)
//   B row-major (ldb), C row-major (ldc); N a multiple of 16 (callers pad their tiles),
//   so there are no masked tails. Every C element is one K-long chain of FMAs in
//   p order: the result does not depend on M, N, the blocking or the thread.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <utility>

namespace nnf {
namespace NNF_ISA_NS {
namespace attn_tile {

#if NNF_ISA_LEVEL >= 2
constexpr int kW = 16, kNV = 4;
#elif NNF_ISA_LEVEL == 1
constexpr int kW = 8, kNV = 2;
#else
constexpr int kW = 4, kNV = 2;
#endif
constexpr int64_t kPad = 16;  // tile widths are multiples of this (>= every kW)

typedef float vf __attribute__((vector_size(kW * sizeof(float)), aligned(4), may_alias));

#define NNF_TILE_INLINE static inline __attribute__((always_inline))

NNF_TILE_INLINE vf vload(const float* p) { return *reinterpret_cast<const vf*>(p); }
NNF_TILE_INLINE void vstore(float* p, vf x) { *reinterpret_cast<vf*>(p) = x; }
// A memory-operand broadcast (vbroadcastss m32): `vf{} + x` would add 0.0 first
// (x = -0.0 makes that no identity), costing a scalar add per broadcast.
NNF_TILE_INLINE vf vbcast(const float* p) {
#if NNF_ISA_LEVEL >= 2
  return (vf)_mm512_set1_ps(*p);
#elif NNF_ISA_LEVEL == 1
  return (vf)_mm256_set1_ps(*p);
#else
  return (vf)_mm_set1_ps(*p);
#endif
}

// cscale (accumulate only; may be null): row r of C is multiplied by cscale[r] as it is
// loaded: the online softmax's rescaling of O by exp(m_old - m_new), at no extra pass.
template <int MR, int NV>
void ukr(int64_t K, const float* a, int64_t sar, int64_t sap, const float* b, int64_t ldb,
         float* c, int64_t ldc, bool accumulate, const float* cscale) {
  vf acc[MR][NV];
  if (accumulate && cscale) {
    for (int r = 0; r < MR; ++r) {
      const vf sr = vbcast(cscale + r);
      for (int v = 0; v < NV; ++v) acc[r][v] = sr * vload(c + r * ldc + v * kW);
    }
  } else if (accumulate) {
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] = vload(c + r * ldc + v * kW);
  } else {
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] = vf{};
  }
  // Unrolled: the loop's scalar increments and branch would otherwise compete with the
  // FMAs for ports 0 and 5 on Intel cores.
#pragma GCC unroll 4
  for (int64_t p = 0; p < K; ++p) {
    vf bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = vload(b + p * ldb + v * kW);
    const float* ap = a + p * sap;
    for (int r = 0; r < MR; ++r) {
      const vf ar = vbcast(ap + r * sar);
      for (int v = 0; v < NV; ++v) acc[r][v] += ar * bv[v];
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) vstore(c + r * ldc + v * kW, acc[r][v]);
}

using Ukr = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*,
                     int64_t, bool, const float*);

// Rows per micro-tile for NV vectors per row: as many as the registers hold
// (MR * NV accumulators + NV B vectors + 1 broadcast), so narrow tiles (D = 32,
// a 16-query S^T) still keep enough independent FMA chains in flight.
#if NNF_ISA_LEVEL >= 2
constexpr int mr_for(int nv) { return nv >= 4 ? 6 : nv == 3 ? 8 : nv == 2 ? 12 : 16; }
#else
constexpr int mr_for(int nv) { return nv >= 2 ? 6 : 12; }
#endif

template <int NV, int MR>
Ukr pick_mr(int mr) {
  if constexpr (MR == 1) {
    return &ukr<1, NV>;
  } else {
    return mr >= MR ? &ukr<MR, NV> : pick_mr<NV, MR - 1>(mr);
  }
}

inline Ukr pick(int mr, int nv) {
  switch (nv) {
    case 1: return pick_mr<1, mr_for(1)>(mr);
#if NNF_ISA_LEVEL >= 2
    case 3: return pick_mr<3, mr_for(3)>(mr);
    case 4: return pick_mr<4, mr_for(4)>(mr);
#endif
    default: return pick_mr<2, mr_for(2)>(mr);
  }
}

// Column panels outermost: one K x (NV*W) panel of B stays in L1 across all row blocks.
inline void gemm(int64_t M, int64_t N, int64_t K, const float* a, int64_t sar, int64_t sap,
                 const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate,
                 const float* cscale = nullptr) {
  constexpr int64_t nr = int64_t(kNV) * kW;
  for (int64_t j0 = 0; j0 < N; j0 += nr) {
    const int nv = int((N - j0 < nr ? N - j0 : nr) / kW);
    const int mr = mr_for(nv);
    const Ukr full = pick(mr, nv);
    int64_t i0 = 0;
    for (; i0 + mr <= M; i0 += mr)
      full(K, a + i0 * sar, sar, sap, b + j0, ldb, c + i0 * ldc + j0, ldc, accumulate,
           cscale ? cscale + i0 : nullptr);
    if (i0 < M)
      pick(int(M - i0), nv)(K, a + i0 * sar, sar, sap, b + j0, ldb, c + i0 * ldc + j0, ldc,
                            accumulate, cscale ? cscale + i0 : nullptr);
  }
}

// Causal band: which part of each row block (rows [i, i + mr)) can be non-zero.
// Row i's columns are [i + col_lo, i + col_hi) and its k range [i + k_lo, i + k_hi),
// each clipped to the tile (use kNoClip for no limit). Columns are widened to the
// 16-float tile grid; columns outside a row block's range are NOT written (callers mask
// them afterwards), k terms outside the range are known zeros and skipped.
constexpr int64_t kNoClip = int64_t(1) << 40;
struct Band {
  int64_t col_lo = -kNoClip, col_hi = kNoClip, k_lo = -kNoClip, k_hi = kNoClip;
};

inline int64_t clip(int64_t x, int64_t lo, int64_t hi) { return x < lo ? lo : (x > hi ? hi : x); }

inline void gemm_band(int64_t M, int64_t N, int64_t K, const float* a, int64_t sar, int64_t sap,
                      const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate,
                      const Band& band, const float* cscale = nullptr) {
  constexpr int64_t nr = int64_t(kNV) * kW;
  for (int64_t j0 = 0; j0 < N; j0 += nr) {
    const int64_t jend = N - j0 < nr ? N : j0 + nr;
    const int mr_full = mr_for(int((jend - j0) / kW));
    for (int64_t i0 = 0; i0 < M; i0 += mr_full) {
      const int mr = int(M - i0 < mr_full ? M - i0 : mr_full);
      // Columns any row of the block may need, on the 16-float grid, within this panel.
      int64_t lo = clip(i0 + band.col_lo, 0, N) / kPad * kPad;
      int64_t hi = (clip(i0 + mr + band.col_hi - 1, 0, N) + kPad - 1) / kPad * kPad;
      lo = lo < j0 ? j0 : lo;
      hi = hi > jend ? jend : hi;
      if (lo >= hi) continue;
      const int64_t k0 = clip(i0 + band.k_lo, 0, K);
      int64_t k1 = clip(i0 + mr - 1 + band.k_hi, 0, K);
      if (k1 < k0) k1 = k0;
      pick(mr, int((hi - lo) / kW))(k1 - k0, a + i0 * sar + k0 * sap, sar, sap, b + k0 * ldb + lo,
                                    ldb, c + i0 * ldc + lo, ldc, accumulate,
                                    cscale ? cscale + i0 : nullptr);
    }
  }
}

// Softmax tiles work in log2 units (Q pre-scaled by scale * log2(e)), so the
// exponential is 2^x: n = round(x), f = x - n in [-1/2, 1/2] exactly, 2^f by its
// degree-6 Taylor series in f ln 2 (truncation (ln2/2)^7 / 7! = 1.2e-7 relative, about
// one ulp), then 2^n: one vscalefps with AVX-512 (which also flushes results below
// 2^-150 to 0), the exponent bits elsewhere. Compared with a natural exp (Cephes) this
// drops the x * log2(e) product and the two-part ln 2 reduction: 11 vector operations
// a score instead of 16, most of the non-GEMM time of a tile.
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2 = 0.693147180559945309f;

NNF_TILE_INLINE vf vexp2(vf x) {
  const vf lo = vf{} + -150.0f;
  x = x < lo ? lo : x;  // -inf (masked) would make f = -inf - -inf = NaN
#if NNF_ISA_LEVEL >= 2
  // maskz form: GCC 12's unmasked one reads an undefined source (-Wmaybe-uninitialized).
  const vf n = (vf)_mm512_maskz_roundscale_ps(0xFFFF, (__m512)x,
                                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
  const vf magic = vf{} + 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const vf n = (x + magic) - magic;
#endif
  const vf f = x - n;
  vf p = vf{} + 1.5403530393381609e-4f;  // ln2^6 / 720
  p = p * f + 1.3333558146428443e-3f;     // ln2^5 / 120
  p = p * f + 9.6181291076284772e-3f;     // ln2^4 / 24
  p = p * f + 5.5504108664821580e-2f;     // ln2^3 / 6
  p = p * f + 2.4022650695910071e-1f;     // ln2^2 / 2
  p = p * f + 6.9314718055994531e-1f;     // ln2
  p = p * f + 1.0f;
#if NNF_ISA_LEVEL >= 2
  return (vf)_mm512_maskz_scalef_ps(0xFFFF, (__m512)p, (__m512)n);
#else
  typedef int32_t vi __attribute__((vector_size(kW * sizeof(int32_t))));
  const vi ni = __builtin_convertvector(n, vi);
  // Below 2^-126 the exponent field would wrap: those results are flushed to 0.
  const vi bits = (ni + 127) << 23;
  vf scale;
  __builtin_memcpy(&scale, &bits, sizeof scale);
  const vf res = p * scale;
  return ni < -126 ? vf{} : res;
#endif
}

// ---- W x W in-register transpose (the K^T / Q^T / V^T packs) -----------------------
// Block-swap transpose: for s = W/2, W/4, ..., 1, rows i and i + s (bit s of i clear)
// exchange their off-diagonal s-wide blocks; after the last stage row d holds column d.
// Each stage is one two-source shuffle per row (vpermt2ps with AVX-512).
typedef int32_t vmask __attribute__((vector_size(kW * sizeof(int32_t))));

template <int S, size_t... L>
constexpr vmask mask_first(std::index_sequence<L...>) {  // lane l: a[l] | b[l - S]
  return vmask{((L & S) ? int(kW + L - S) : int(L))...};
}
template <int S, size_t... L>
constexpr vmask mask_second(std::index_sequence<L...>) {  // lane l: a[l + S] | b[l]
  return vmask{((L & S) ? int(kW + L) : int(L + S))...};
}

template <int S>
NNF_TILE_INLINE void transpose_stage(vf* rows) {
  if constexpr (S >= 1) {
    constexpr vmask m1 = mask_first<S>(std::make_index_sequence<kW>{});
    constexpr vmask m2 = mask_second<S>(std::make_index_sequence<kW>{});
    for (int i = 0; i < kW; ++i) {
      if (i & S) continue;
      const vf a = rows[i], b = rows[i + S];
      rows[i] = __builtin_shuffle(a, b, m1);
      rows[i + S] = __builtin_shuffle(a, b, m2);
    }
    transpose_stage<S / 2>(rows);
  }
}

// dst[d*ldd + c] = src[c*lds + d] for c, d < kW.
NNF_TILE_INLINE void transpose_block(const float* src, int64_t lds, float* dst, int64_t ldd) {
  vf rows[kW];
  for (int c = 0; c < kW; ++c) rows[c] = vload(src + c * lds);
  transpose_stage<kW / 2>(rows);
  for (int d = 0; d < kW; ++d) vstore(dst + d * ldd, rows[d]);
}

}  // namespace attn_tile
}  // namespace NNF_ISA_NS
}  // namespace nnf
