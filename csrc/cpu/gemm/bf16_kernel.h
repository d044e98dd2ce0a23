// Micro-kernel contract of the bf16 GEMM frame (gemm_bf16.cpp), for vdpbf16ps-style
// kernels that multiply bf16 pairs and accumulate in float32.
//
//   a: packed A micro-panel, kp x MR pairs: a[q*MR + i] holds A(i, 2q) in its low and
//      A(i, 2q+1) in its high 16 bits (odd k: the last high half is zero)
//   b: packed B micro-panel, kp x NR pairs: b[q*NR + j] holds B(2q, j) low, B(2q+1, j) high
//   c: the MR x NR tile of the float32 work matrix (row stride ldc, unit column stride):
//      c = acc (first k-block) or c + acc. alpha, beta, bias and activation are applied by
//      the frame once every k-block is done, so kernels have no epilogue and no edges (the
//      work matrix and the panels are padded to whole tiles).
#pragma once
#include <cstdint>

#include "common/dispatch.h"

namespace nnf {
namespace gemm {

using Bf16MicroKernel = void (*)(int64_t kp, const uint32_t* a, const uint32_t* b, float* c,
                                 int64_t ldc, bool accumulate);

// One bf16 GEMM variant. ukr == nullptr: the widening path (bf16 operands widened to
// float32, then the float32 GEMM of the active ISA: correct on every CPU).
//   kc: k-block in elements (even); mc, nc: as the float32 frame (multiples of mr, nr).
struct Bf16KernelConfig {
  const char* name;
  Slot slot;
  int preference;
  int mr, nr;
  int64_t kc, mc, nc;
  Bf16MicroKernel ukr;
};

bool register_bf16_variant(const Bf16KernelConfig& cfg);

}  // namespace gemm

#define NNF_REGISTER_BF16_GEMM_VARIANT(cfg)                                              \
  [[maybe_unused]] static const bool NNF_DISPATCH_CAT(nnf_bf16_variant_, __COUNTER__) = \
      ::nnf::gemm::register_bf16_variant(cfg)

}  // namespace nnf
