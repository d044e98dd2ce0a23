// Contiguous float32 <-> bf16 loops, compiled per ISA (generic / AVX2 / AVX-512): the
// branch-free integer rounding of bf16_scalar.h, vectorised by the compiler under each
// object library's flags. Same bits on every path.
#include "cpu/gemm/bf16_convert_isa.h"
#include "cpu/gemm/bf16_scalar.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace {

void f32_to_bf16(int64_t n, const float* src, uint16_t* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16::from_f32(src[i]);
}

void bf16_to_f32(int64_t n, const uint16_t* src, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16::to_f32(src[i]);
}

}  // namespace

NNF_REGISTER_PER_ISA(f32_to_bf16_stub, f32_to_bf16);
NNF_REGISTER_PER_ISA(bf16_to_f32_stub, bf16_to_f32);

}  // namespace NNF_ISA_NS
}  // namespace nnf
