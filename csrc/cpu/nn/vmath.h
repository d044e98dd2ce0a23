// Branch-free float math for the per-ISA nn kernels.
//
// glibc's expf/tanhf only vectorise under -ffast-math (which we do not use), so
// loops calling them would stay scalar. These versions are plain arithmetic plus
// selects, so `#pragma omp simd` loops that call them vectorise on every ISA.
// Every function is `static inline`: each per-ISA translation unit gets its own
// internal copy, so the linker can never hand an AVX-512 copy to generic code.
#pragma once
#include <cstdint>
#include <cstring>

#define NNF_VM_INLINE static inline __attribute__((always_inline))

namespace nnf {
namespace NNF_ISA_NS {

NNF_VM_INLINE float vm_from_bits(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}
NNF_VM_INLINE int32_t vm_to_bits(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i;
}

// exp(x) for x <= 88 (Cephes expf: n = round(x/ln2), r = x - n*ln2 in two parts,
// degree-6 polynomial, scale by 2^n built in the exponent bits). ~1-2 ulp.
// Returns 0 below -87.33 (where the true value is subnormal) and saturates at
// exp(88) above 88: callers only pass x <= 0 (softmax, sigmoid, tanh).
NNF_VM_INLINE float vm_exp(float x) {
  const float lo = -87.3365447504f, hi = 88.0f;
  float xc = x < lo ? lo : x;
  xc = xc > hi ? hi : xc;  // NaN passes through both selects unchanged
  // Adding 1.5*2^23 rounds to an integer held in the low mantissa bits of t.
  const float round_magic = 12582912.0f;
  const float t = xc * 1.44269504088896341f + round_magic;
  const float n = t - round_magic;
  const int32_t ni = vm_to_bits(t) - vm_to_bits(round_magic);  // == n, no float->int UB
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  // Unsigned shift: for NaN x, ni is meaningless and a signed shift would overflow (UB; found by
  // .ci/sanitize); p is NaN then, so the result is NaN whatever the scale.
  const float scale = vm_from_bits(int32_t(uint32_t(ni + 127) << 23));
  const float res = p * scale;
  return x < lo ? 0.0f : res;
}

// 1 / (1 + exp(-x)) without overflow and with full relative accuracy for x << 0.
NNF_VM_INLINE float vm_sigmoid(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float e = vm_exp(-ax);
  const float r = 1.0f / (1.0f + e);
  return x >= 0.0f ? r : e * r;
}

// tanh(x): Taylor series (to x^13) below |x| = 0.3, where (1-e)/(1+e) would lose
// relative accuracy to cancellation; (1 - e)/(1 + e) with e = exp(-2|x|) above.
NNF_VM_INLINE float vm_tanh(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float x2 = x * x;
  float p = 21844.0f / 6081075.0f;
  p = p * x2 - 1382.0f / 155925.0f;
  p = p * x2 + 62.0f / 2835.0f;
  p = p * x2 - 17.0f / 315.0f;
  p = p * x2 + 2.0f / 15.0f;
  p = p * x2 - 1.0f / 3.0f;
  const float small = x + x * x2 * p;
  const float e = vm_exp(-2.0f * ax);
  float big = (1.0f - e) / (1.0f + e);
  big = x < 0.0f ? -big : big;
  return ax < 0.3f ? small : big;
}

}  // namespace NNF_ISA_NS
}  // namespace nnf
