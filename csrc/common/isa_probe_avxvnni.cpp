// AVX-VNNI probe (VEX-encoded, no AVX-512 needed): two vpdpbusd over 32 u8 x s8 pairs each.
#include <immintrin.h>

#include "common/isa_probe.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace {

const char* probe(int32_t* dot) {
  volatile char one = 1, two = 2;  // not folded at compile time
  const __m256i a = _mm256_set1_epi8(one), b = _mm256_set1_epi8(two);
  __m256i acc = _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), a, b);  // 8 lanes x 4
  acc = _mm256_dpbusd_avx_epi32(acc, a, b);
  alignas(32) int32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
  int32_t s = 0;
  for (int32_t v : lanes) s += v;
  *dot = s;
  return "avx_vnni";
}

}  // namespace

NNF_REGISTER_PER_ISA(isa_probe_stub, probe);

}  // namespace NNF_ISA_NS
}  // namespace nnf
