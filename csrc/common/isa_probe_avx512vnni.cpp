// AVX512_VNNI probe: one vpdpbusd over 64 u8 x s8 pairs.
#include <immintrin.h>

#include "common/isa_probe.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace {

const char* probe(int32_t* dot) {
  volatile char one = 1, two = 2;  // not folded at compile time
  const __m512i a = _mm512_set1_epi8(one), b = _mm512_set1_epi8(two);
  const __m512i acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), a, b);  // 16 lanes x 4
  alignas(64) int32_t lanes[16];  // (not _mm512_reduce_add: GCC 12 warns inside it)
  _mm512_store_si512(lanes, acc);
  int32_t s = 0;
  for (int32_t v : lanes) s += v;
  *dot = s;
  return "avx512_vnni";
}

}  // namespace

NNF_REGISTER_PER_ISA(isa_probe_stub, probe);

}  // namespace NNF_ISA_NS
}  // namespace nnf
