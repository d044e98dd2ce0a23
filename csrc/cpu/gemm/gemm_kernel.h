// Micro-kernel interface shared by the portable GEMM frame (gemm.cpp) and the
// per-ISA micro-kernels (sgemm_<MR>x<NR>_<isa>.cpp: the CMake glob picks ISA flags from the suffix).
//
// A micro-kernel computes one MR x NR tile of C from
//   a: packed A micro-panel, kc x MR, element (i, p) at a[p*MR + i]   (always packed)
//   b: B rows, kc x NR, element (p, j) at b[p*ldb + j]  (ldb == NR when packed; the
//      frame may pass an unpacked row-major B with ldb = its row stride)
// and writes the whole tile to c (row stride ldc, unit column stride):
//   c = alpha*acc + beta*c   (beta == 0: c is not read)
//   then, when `last` (the final k-block): + bias_row[i] / bias_col[j], then activation.
// The frame routes edge tiles and non-unit column strides through a temporary tile,
// so a kernel never needs masks and never writes outside its MR x NR tile.
#pragma once
#include <cstdint>

namespace nnf {
namespace gemm {

struct TileEpilogue {
  float alpha;
  float beta;
  const float* bias_row;  // MR values (padded) or nullptr
  const float* bias_col;  // NR values (padded) or nullptr
  int activation;         // nnf::Activation as int; 0 unless this is the last k-block
};

using MicroKernel = void (*)(int64_t kc, const float* a, const float* b, int64_t ldb, float* c,
                             int64_t ldc, const TileEpilogue& ep);

// One selectable kernel variant with the block sizes it was tuned for.
//   kc: k-block (packed B micro-panel kc*NR floats stays in L1/L2)
//   mc: rows of A per packed block (mc*kc floats in L2), multiple of mr
//   nc: columns of B per packed block (kc*nc floats in L2/L3), multiple of nr
struct KernelConfig {
  const char* name;
  int isa;  // nnf::Isa as int
  int mr, nr;
  int64_t kc, mc, nc;
  MicroKernel ukr;
};

}  // namespace gemm

namespace generic {
void sgemm_generic_4x8(int64_t, const float*, const float*, int64_t, float*, int64_t,
                       const gemm::TileEpilogue&);
}
namespace avx2 {
void sgemm_avx2_6x16(int64_t, const float*, const float*, int64_t, float*, int64_t,
                     const gemm::TileEpilogue&);
}
namespace avx512 {
void sgemm_avx512_14x32(int64_t, const float*, const float*, int64_t, float*, int64_t,
                        const gemm::TileEpilogue&);
}

}  // namespace nnf
