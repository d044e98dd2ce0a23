// AVX512_BF16 probe: two vdpbf16ps over 32 bf16 pairs each.
#include <immintrin.h>

#include "common/isa_probe.h"

namespace nnf {
namespace NNF_ISA_NS {
namespace {

const char* probe(int32_t* dot) {
  volatile float one = 1.0f, two = 2.0f;  // not folded at compile time
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(one), _mm512_set1_ps(one));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(two), _mm512_set1_ps(two));
  __m512 acc = _mm512_dpbf16_ps(_mm512_setzero_ps(), a, b);  // 16 lanes x 2 products
  acc = _mm512_dpbf16_ps(acc, a, b);
  alignas(64) float lanes[16];  // (not _mm512_reduce_add: GCC 12 warns inside it)
  _mm512_store_ps(lanes, acc);
  float s = 0.0f;
  for (float v : lanes) s += v;
  *dot = int32_t(s);
  return "avx512_bf16";
}

}  // namespace

NNF_REGISTER_PER_ISA(isa_probe_stub, probe);

}  // namespace NNF_ISA_NS
}  // namespace nnf
