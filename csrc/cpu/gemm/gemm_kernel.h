// Micro-kernel interface shared by the portable GEMM frame (gemm.cpp) and the
// per-ISA micro-kernels (sgemm_<MR>x<NR>_<isa>.cpp: the CMake glob picks ISA flags from the suffix).
//
// A micro-kernel computes one MR x NR tile of C from
//   a: A micro-panel, element (i, p) at a[p*lda + i] (packed: lda == MR; or a transposed
//      view read in place); the *_rowa entry point reads a[i*lda + p] instead
//      (row-major A read in place, no packing)
//   b: B rows, kc x NR, element (p, j) at b[p*ldb + j]  (ldb == NR when packed; the
//      frame may pass an unpacked row-major B with ldb = its row stride)
// and writes the whole tile to c (row stride ldc, unit column stride):
//   c = alpha*acc + beta*c   (beta == 0: c is not read)
//   then, when `last` (the final k-block): + bias_row[i] / bias_col[j], then activation.
// The frame routes edge tiles and non-unit column strides through a temporary tile,
// so a kernel never needs masks and never writes outside its MR x NR tile.
#pragma once
#include <cstdint>

#include "common/dispatch.h"

namespace nnf {
namespace gemm {

struct TileEpilogue {
  float alpha;
  float beta;
  const float* bias_row;  // MR values (padded) or nullptr
  const float* bias_col;  // NR values (padded) or nullptr
  int activation;         // nnf::Activation as int; 0 unless this is the last k-block
};

using MicroKernel = void (*)(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                             float* c, int64_t ldc, const TileEpilogue& ep);

// Exact-size edge tile: a kernel computing rows x `cols` (cols: 8, 16 or 32 here) that reads
// only `rows` rows of A and `cols` columns of B and writes rows x cols of C.
struct EdgeKernel {
  MicroKernel ukr;
  int cols;
};
// Picks the edge kernel for a rows x cols remainder tile (rows <= mr, cols <= nr).
using EdgePicker = EdgeKernel (*)(int rows, int cols, bool rowa);

// dst[p*W + j] = src[j*ss + p] for j < W (W = mr or nr), p < kc: packing of a full
// row-major A panel / column-major B panel with the ISA's own shuffles.
using TransposePack = void (*)(int64_t kc, const float* src, int64_t ss, float* dst);

// One selectable kernel variant with the block sizes it was tuned for. Each registers
// itself (NNF_REGISTER_GEMM_VARIANT) in the file that defines its micro-kernel.
//   preference: order within its slot; "auto" takes the lowest (the newest variant)
//   kc: k-block (packed B micro-panel kc*NR floats stays in L1/L2)
//   mc: rows of A per packed block (mc*kc floats in L2), multiple of mr
//   nc: columns of B per packed block (kc*nc floats in L2/L3), multiple of nr
struct KernelConfig {
  const char* name;
  Slot slot;
  int preference;
  int mr, nr;
  int64_t kc, mc, nc;
  MicroKernel ukr;       // A element (i, p) at a[p*lda + i]
  MicroKernel ukr_rowa;  // A element (i, p) at a[i*lda + p]
  EdgePicker edge;       // nullptr: edge tiles run the full kernel on zero-padded panels
  TransposePack tpack_a, tpack_b;  // nullptr: portable (SSE 4x4) transposing pack
  // Row-major C is computed as C^T = B^T A^T when that pads to fewer than swap_below
  // times the tile area (padded to whole mr x nr tiles either way).
  double swap_below;
};

// Adds a variant to the sgemm variant table (gemm.cpp; "gemm.sgemm" in show_config).
// Out of line in portable code: it runs at import on every CPU (see register_dispatch).
bool register_sgemm_variant(const KernelConfig& cfg);

}  // namespace gemm

// In the file that defines the variant's micro-kernel, with a constexpr KernelConfig
// (constant data, so the static initialiser is a bare call).
#define NNF_REGISTER_GEMM_VARIANT(cfg)                                                 \
  [[maybe_unused]] static const bool NNF_DISPATCH_CAT(nnf_gemm_variant_, __COUNTER__) = \
      ::nnf::gemm::register_sgemm_variant(cfg)

#define NNF_SGEMM_UKR(name)                                                                    \
  void name(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, \
            int64_t ldc, const gemm::TileEpilogue& ep)
namespace generic {
NNF_SGEMM_UKR(sgemm_generic_4x8);
NNF_SGEMM_UKR(sgemm_generic_4x8_rowa);
}  // namespace generic
namespace avx2 {
NNF_SGEMM_UKR(sgemm_avx2_6x16);
NNF_SGEMM_UKR(sgemm_avx2_6x16_rowa);
NNF_SGEMM_UKR(sgemm_avx2_6x16p);
NNF_SGEMM_UKR(sgemm_avx2_6x16p_rowa);
NNF_SGEMM_UKR(sgemm_avx2_6x16e);
NNF_SGEMM_UKR(sgemm_avx2_6x16e_rowa);
gemm::EdgeKernel sgemm_avx2_6x16e_edge(int rows, int cols, bool rowa);
void transpose_pack_avx2_6(int64_t kc, const float* src, int64_t ss, float* dst);
void transpose_pack_avx2_16(int64_t kc, const float* src, int64_t ss, float* dst);
}  // namespace avx2
namespace avx512 {
NNF_SGEMM_UKR(sgemm_avx512_14x32);
NNF_SGEMM_UKR(sgemm_avx512_14x32_rowa);
NNF_SGEMM_UKR(sgemm_avx512_14x32e);
NNF_SGEMM_UKR(sgemm_avx512_14x32e_rowa);
gemm::EdgeKernel sgemm_avx512_14x32e_edge(int rows, int cols, bool rowa);
void transpose_pack_avx512_14(int64_t kc, const float* src, int64_t ss, float* dst);
void transpose_pack_avx512_32(int64_t kc, const float* src, int64_t ss, float* dst);
}  // namespace avx512
#undef NNF_SGEMM_UKR

}  // namespace nnf
