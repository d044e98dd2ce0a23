// Scalar float32 <-> bf16 bit conversions: the definition every SIMD path reproduces.
#pragma once
#include <cstdint>
#include <cstring>

namespace nnf {
namespace bf16 {

inline uint32_t f32_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}

// Round to nearest even on the 16 dropped bits; NaN -> sign | 0x7fc0 (quiet, as ml_dtypes).
// Branch-free so the per-ISA loops auto-vectorise it.
inline uint16_t from_f32_bits(uint32_t u) {
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
  return uint16_t(nan ? (((u >> 16) & 0x8000u) | 0x7fc0u) : rounded);
}

inline uint16_t from_f32(float x) { return from_f32_bits(f32_bits(x)); }

inline float to_f32(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// x rounded to the nearest bf16 value, as a float32.
inline float round_f32(float x) { return to_f32(from_f32(x)); }

}  // namespace bf16
}  // namespace nnf
